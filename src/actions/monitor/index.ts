import { runAction } from '../../domain/action';
import { monitorAction } from './monitor';

runAction(monitorAction);
