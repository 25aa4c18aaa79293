import { runAction } from '../runner';
import { monitorAction } from './monitor';

runAction(monitorAction);
