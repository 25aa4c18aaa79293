import { runAction } from '../../domain/action';
import { gateAction } from './gate';

runAction(gateAction);
