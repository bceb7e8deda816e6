import type { Migration } from 'kysely';
import * as initial from './0001_initial.ts';
import * as operatorConsole from './0002_console.ts';
import * as rejectedEvidence from './0003_rejected_evidence.ts';
import * as attemptPrivateTarget from './0004_attempt_private_target.ts';
import * as reconciliation from './0005_reconciliation.ts';
import * as refunds from './0006_refunds.ts';
import * as operators from './0007_operators.ts';

/** Every migration, in order. Add new files here; never edit one that has shipped. */
export const migrations: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_console': operatorConsole,
  '0003_rejected_evidence': rejectedEvidence,
  '0004_attempt_private_target': attemptPrivateTarget,
  '0005_reconciliation': reconciliation,
  '0006_refunds': refunds,
  '0007_operators': operators,
};
