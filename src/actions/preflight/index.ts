import { runAction } from '../runner';
import { preflightAction } from './preflight';

runAction(preflightAction);
