import { runAction } from '../runner';
import { restoreAction } from './restore';

runAction(restoreAction);
