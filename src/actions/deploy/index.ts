import { runAction } from '../../core/action';
import { deployAction } from './deploy';

runAction(deployAction);
