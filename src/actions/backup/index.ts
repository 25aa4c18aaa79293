import { runAction } from '../runner';
import { backupAction } from './backup';

runAction(backupAction);
