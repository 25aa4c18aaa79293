import { runAction } from '../../domain/action';
import { rollbackAction } from './rollback';

runAction(rollbackAction);
