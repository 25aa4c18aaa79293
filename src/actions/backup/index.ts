import { runAction } from '../../core/action';
import { backupAction } from './backup';

runAction(backupAction);
