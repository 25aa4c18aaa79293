import { runAction } from '../../core/action';
import { gateAction } from './gate';

runAction(gateAction);
