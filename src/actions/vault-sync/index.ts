import { runAction } from '../../core/action';
import { vaultSyncAction } from './vault-sync';

runAction(vaultSyncAction);
