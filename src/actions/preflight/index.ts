import { runAction } from '../../domain/action';
import { preflightAction } from './preflight';

runAction(preflightAction);
