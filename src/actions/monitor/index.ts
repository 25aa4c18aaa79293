import { runAction } from '../../core/action';
import { monitorAction } from './monitor';

runAction(monitorAction);
