import { runAction } from '../runner';
import { gateAction } from './gate';

runAction(gateAction);
