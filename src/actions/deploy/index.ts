import { runAction } from '../../domain/action';
import { deployAction } from './deploy';

runAction(deployAction);
