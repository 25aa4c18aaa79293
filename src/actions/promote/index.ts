import { runAction } from '../../core/action';
import { promoteAction } from './promote';

runAction(promoteAction);
