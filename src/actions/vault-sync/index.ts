import { runAction } from '../../domain/action';
import { vaultSyncAction } from './vault-sync';

runAction(vaultSyncAction);
