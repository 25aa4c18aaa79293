import { runAction } from '../runner';
import { rollbackAction } from './rollback';

runAction(rollbackAction);
