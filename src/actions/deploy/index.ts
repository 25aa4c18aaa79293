import { runAction } from '../runner';
import { deployAction } from './deploy';

runAction(deployAction);
