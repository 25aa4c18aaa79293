import { runAction } from '../../core/action';
import { statusAction } from './status';

runAction(statusAction);
