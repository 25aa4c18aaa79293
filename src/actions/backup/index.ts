import { runAction } from '../../domain/action';
import { backupAction } from './backup';

runAction(backupAction);
