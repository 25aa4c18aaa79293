import { runAction } from '../../core/action';
import { rollbackAction } from './rollback';

runAction(rollbackAction);
