import { runAction } from '../runner';
import { statusAction } from './status';

runAction(statusAction);
