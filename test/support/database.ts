/**
 * The adapter for `pg`: a PostgreSQL session, usually reached through the SSH connection's port
 * forwarding, so the database never listens beyond the host's loopback.
 */
import { Client } from 'pg';
import type { Forward, Host } from '../../src/infra/host';

export interface DatabaseTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
}

export class Database {
  private constructor(
    private readonly client: Client,
    private readonly forward?: Forward,
  ) {}

  static async connect(target: DatabaseTarget): Promise<Database> {
    const client = new Client({ ...target, connectionTimeoutMillis: 20_000, application_name: 'twinstack' });
    await client.connect();
    return new Database(client);
  }

  /** Opens a session to a database on the host's side of the SSH connection. */
  static async throughHost(host: Host, target: DatabaseTarget): Promise<Database> {
    const forward = await host.forward(target.host, target.port);
    const client = new Client({ ...target, host: '127.0.0.1', port: forward.port, connectionTimeoutMillis: 20_000, application_name: 'twinstack' });
    try {
      await client.connect();
    } catch (e) {
      await forward.close();
      throw e;
    }
    return new Database(client, forward);
  }

  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    const r = await this.client.query(sql, params);
    return r.rows as T[];
  }

  async close(): Promise<void> {
    await this.client.end().catch(() => undefined);
    await this.forward?.close();
  }
}
