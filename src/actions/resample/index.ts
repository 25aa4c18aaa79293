import { runAction } from '../runner';
import { resampleAction } from './resample';

runAction(resampleAction);
