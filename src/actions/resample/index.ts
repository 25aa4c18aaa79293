import { runAction } from '../../core/action';
import { resampleAction } from './resample';

runAction(resampleAction);
