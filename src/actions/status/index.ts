import { runAction } from '../../domain/action';
import { statusAction } from './status';

runAction(statusAction);
