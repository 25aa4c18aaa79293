import { runAction } from '../../core/action';
import { preflightAction } from './preflight';

runAction(preflightAction);
