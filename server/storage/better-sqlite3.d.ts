// Types for the part of better-sqlite3 12 the server uses (the package ships none, and @types would add a lockfile
// dependency for a handful of signatures).
declare module 'better-sqlite3' {
  namespace Database {
    interface RunResult {
      changes: number;
      lastInsertRowid: number | bigint;
    }

    interface Statement {
      run(...params: unknown[]): RunResult;
      get(...params: unknown[]): unknown;
      all(...params: unknown[]): unknown[];
    }

    interface Transaction<F extends (...args: any[]) => any> {
      (...args: Parameters<F>): ReturnType<F>;
      deferred(...args: Parameters<F>): ReturnType<F>;
      immediate(...args: Parameters<F>): ReturnType<F>;
      exclusive(...args: Parameters<F>): ReturnType<F>;
    }

    interface Options {
      readonly?: boolean;
      fileMustExist?: boolean;
      /** milliseconds to wait for a lock before SQLITE_BUSY */
      timeout?: number;
    }

    interface Database {
      readonly name: string;
      readonly open: boolean;
      readonly inTransaction: boolean;
      prepare(sql: string): Statement;
      exec(sql: string): this;
      pragma(source: string, options?: { simple?: boolean }): unknown;
      transaction<F extends (...args: any[]) => any>(fn: F): Transaction<F>;
      close(): this;
    }
  }

  const Database: {
    new (filename: string, options?: Database.Options): Database.Database;
  };

  export = Database;
}
