import { runAction } from '../runner';
import { promoteAction } from './promote';

runAction(promoteAction);
