import { runAction } from '../../domain/action';
import { resampleAction } from './resample';

runAction(resampleAction);
