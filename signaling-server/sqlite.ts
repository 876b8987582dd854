/**
 * How the server keeps a SQLite file (node:sqlite): the grid store (store.ts) and the settlement
 * ledger (settle/ledger.ts) open theirs the same way. The schema grows by migrations numbered by
 * SQLite's `user_version` pragma: each runs once, in a transaction, in order, so an old file is
 * brought up to date when it is opened and a file from a newer infermesh is refused rather than
 * misread. WAL lets a dashboard read while the server writes.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { InfermeshError, InfermeshErrorOptions } from '../shared/errors.ts';

export interface SqliteFile {
  db: DatabaseSync;
  /** Runs `run` in one write transaction; rolls back when it throws. */
  transaction<T>(run: () => T): T;
}

export interface OpenSqliteOptions {
  /** the file, or ':memory:' */
  path: string;
  /** migration i (1-based) brings user_version from i - 1 to i; append only */
  migrations: readonly string[];
  /** what the file is, for messages: 'the store', 'the settlement ledger' */
  what: string;
  /** the error every failure is reported as */
  error: new (message: string, options?: InfermeshErrorOptions) => InfermeshError;
}

export function openSqlite(options: OpenSqliteOptions): SqliteFile {
  const { path, migrations, what, error: Failure } = options;
  let db: DatabaseSync;
  try {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    db = new DatabaseSync(path);
  } catch (err) {
    throw new Failure(`cannot open ${what}: ${(err as Error).message}`, { source: path, cause: err });
  }
  try {
    if (path !== ':memory:') db.exec('PRAGMA journal_mode = WAL');
    // Another process (a dashboard, sqlite3) may hold the file briefly; wait instead of failing.
    db.exec('PRAGMA busy_timeout = 5000');
    migrate(db, options);
  } catch (err) {
    db.close();
    throw err instanceof Failure ? err : new Failure(`cannot open ${what}: ${(err as Error).message}`, { source: path, cause: err });
  }
  return {
    db,
    transaction(run) {
      db.exec('BEGIN IMMEDIATE');
      try {
        const result = run();
        db.exec('COMMIT');
        return result;
      } catch (err) {
        db.exec('ROLLBACK');
        throw err;
      }
    },
  };
}

function migrate(db: DatabaseSync, { path, migrations, what, error: Failure }: OpenSqliteOptions): void {
  const version = Number((db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version);
  if (version > migrations.length) {
    throw new Failure(`${what} has schema version ${version}, newer than this infermesh knows (${migrations.length}); upgrade infermesh or use another --data folder`, { source: path });
  }
  for (let v = version; v < migrations.length; v++) {
    db.exec('BEGIN IMMEDIATE');
    try {
      db.exec(migrations[v]);
      db.exec(`PRAGMA user_version = ${v + 1}`);
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw new Failure(`migration to schema version ${v + 1} failed: ${(err as Error).message}`, { source: path, cause: err });
    }
  }
}
