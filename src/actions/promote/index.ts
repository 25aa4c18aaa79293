import { runAction } from '../../domain/action';
import { promoteAction } from './promote';

runAction(promoteAction);
