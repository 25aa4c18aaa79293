import { runAction } from '../runner';
import { vaultSyncAction } from './vault-sync';

runAction(vaultSyncAction);
