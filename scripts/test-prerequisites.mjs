// What `npm test` needs on the machine: tools (chromium, database clients, the PostgreSQL server
// binaries, openssl, sysbench), running PostgreSQL / MariaDB / Redis on loopback and their `test`
// databases. Installs (apt, as root) or starts what is missing when it can, then stops with one
// message per missing piece and the command that fixes it. Plain JavaScript: it runs before
// `npm ci` in .ci/run, on the machine's own Node (20 on Debian 12).
//
// Environment: EDGEGATE_PREREQUISITES=check only checks (never installs or starts anything);
// EDGEGATE_TEST_{POSTGRES,MARIADB,REDIS}_PORT move a checked port (the tests use 5432, 3306, 6379).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';

const env = process.env;
const ports = {
  postgres: Number(env.EDGEGATE_TEST_POSTGRES_PORT ?? 5432),
  mariadb: Number(env.EDGEGATE_TEST_MARIADB_PORT ?? 3306),
  redis: Number(env.EDGEGATE_TEST_REDIS_PORT ?? 6379),
};
const isRoot = process.getuid?.() === 0;
const mayFix = env.EDGEGATE_PREREQUISITES !== 'check' && isRoot && has('apt-get');
const sudo = isRoot ? '' : 'sudo ';

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 300_000, ...options });
  return { ok: result.status === 0, output: `${result.stdout ?? ''}${result.stderr ?? ''}`.trim() };
}

function say(line) {
  process.stderr.write(`test prerequisites: ${line}\n`);
}

let aptUpdated = false;
function aptInstall(packages) {
  if (!aptUpdated) {
    run('apt-get', ['update', '-qq']);
    aptUpdated = true;
  }
  say(`installing ${packages.join(' ')} (apt)`);
  return run('apt-get', ['install', '-y', '-qq', ...packages], {
    env: { ...env, DEBIAN_FRONTEND: 'noninteractive' },
  }).ok;
}

function postgresBin(name) {
  if (!existsSync('/usr/lib/postgresql')) return undefined;
  for (const version of readdirSync('/usr/lib/postgresql').sort().reverse()) {
    const path = `/usr/lib/postgresql/${version}/bin/${name}`;
    if (existsSync(path)) return path;
  }
  return undefined;
}

/** True when something accepts TCP connections on 127.0.0.1:port within a second. */
function listening(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 1000 });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(check, seconds) {
  for (let i = 0; i < seconds; i++) {
    if (await check()) return true;
    await sleep(1000);
  }
  return false;
}

const mariadbClient = () => (has('mariadb') ? 'mariadb' : 'mysql');
const mariadbAdmin = () => (has('mariadb-admin') ? 'mariadb-admin' : 'mysqladmin');

/** Each piece: how to see it is there, how this script can fix it, and what a person runs. */
const tools = [
  {
    name: 'chromium (browser tests)',
    ok: () => existsSync('/usr/bin/chromium'),
    apt: ['chromium'],
  },
  {
    name: 'psql and pg_isready (PostgreSQL client)',
    ok: () => has('psql') && has('pg_isready'),
    apt: ['postgresql-client'],
  },
  { name: 'pgbench (protocol tests)', ok: () => has('pgbench'), apt: ['postgresql-client'] },
  {
    name: 'the PostgreSQL server binaries (initdb, pg_ctl: auth-relay tests)',
    ok: () => postgresBin('initdb') !== undefined,
    apt: ['postgresql'],
  },
  {
    name: 'the MariaDB client (mariadb, mariadb-admin)',
    ok: () => (has('mariadb') || has('mysql')) && (has('mariadb-admin') || has('mysqladmin')),
    apt: ['mariadb-client'],
  },
  { name: 'redis-cli', ok: () => has('redis-cli'), apt: ['redis-tools'] },
  {
    name: 'PyMySQL (a fourth MySQL client through the edge)',
    // The same rule as packages/edge/test/helpers/pymysql.ts: apt installs PyMySQL for the system
    // Python, and `python3` on PATH may be another one (a pyenv shim) that cannot import it.
    ok: () =>
      [env.EDGEGATE_TEST_PYTHON, '/usr/bin/python3', 'python3']
        .filter(Boolean)
        .some((python) => run(python, ['-c', 'import pymysql']).ok),
    apt: ['python3-pymysql'],
  },
  { name: 'openssl (TLS tests make certificates)', ok: () => has('openssl'), apt: ['openssl'] },
  { name: 'sysbench (the MySQL edge benchmark)', ok: () => has('sysbench'), apt: ['sysbench'] },
];

const services = [
  {
    name: `PostgreSQL on 127.0.0.1:${ports.postgres}`,
    up: async () =>
      (await listening(ports.postgres)) &&
      run('pg_isready', ['-q', '-h', '127.0.0.1', '-p', String(ports.postgres)]).ok,
    installed: () => postgresBin('postgres') !== undefined,
    apt: ['postgresql'],
    start: () => {
      const clusters = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
      return clusters.length > 0
        ? run('pg_ctlcluster', ['--skip-systemctl-redirect', clusters[0], 'main', 'start']).ok
        : false;
    },
    fix: `${sudo}apt-get install -y postgresql && ${sudo}pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`,
  },
  {
    name: `MariaDB on 127.0.0.1:${ports.mariadb}`,
    up: async () =>
      (await listening(ports.mariadb)) &&
      run(mariadbAdmin(), [
        '--protocol=tcp',
        '-h',
        '127.0.0.1',
        '-P',
        String(ports.mariadb),
        '-u',
        'root',
        '--silent',
        'ping',
      ]).ok,
    installed: () => existsSync('/usr/sbin/mariadbd'),
    apt: ['mariadb-server'],
    start: () =>
      run('start-stop-daemon', [
        '--start',
        '--oknodo',
        '--background',
        '--exec',
        '/usr/sbin/mariadbd',
      ]).ok,
    fix: `${sudo}apt-get install -y mariadb-server && ${sudo}start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`,
  },
  {
    name: `Redis on 127.0.0.1:${ports.redis}`,
    up: async () =>
      (await listening(ports.redis)) &&
      run('redis-cli', ['-h', '127.0.0.1', '-p', String(ports.redis), 'ping']).output === 'PONG',
    installed: () => has('redis-server'),
    apt: ['redis-server'],
    start: () =>
      run('redis-server', [
        '--daemonize',
        'yes',
        '--bind',
        '127.0.0.1',
        '-::1',
        '--port',
        String(ports.redis),
        '--save',
        '',
        '--appendonly',
        'no',
      ]).ok,
    fix: `${sudo}apt-get install -y redis-server && redis-server --daemonize yes --bind 127.0.0.1 --port ${ports.redis} --save ''`,
  },
];

const databases = [
  {
    name: `the PostgreSQL database "test" on 127.0.0.1:${ports.postgres}`,
    ok: () =>
      run('psql', [
        '-h',
        '127.0.0.1',
        '-p',
        String(ports.postgres),
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-tAc',
        "SELECT 1 FROM pg_database WHERE datname = 'test'",
      ]).output === '1',
    create: () =>
      run('psql', [
        '-h',
        '127.0.0.1',
        '-p',
        String(ports.postgres),
        '-U',
        'postgres',
        '-d',
        'postgres',
        '-qc',
        'CREATE DATABASE test',
      ]).ok,
    fix: `psql -h 127.0.0.1 -p ${ports.postgres} -U postgres -c 'CREATE DATABASE test'`,
  },
  {
    name: `the MariaDB database "test" on 127.0.0.1:${ports.mariadb}`,
    ok: () =>
      run(mariadbClient(), [
        '--protocol=tcp',
        '-h',
        '127.0.0.1',
        '-P',
        String(ports.mariadb),
        '-u',
        'root',
        '-e',
        'USE test',
      ]).ok,
    create: () =>
      run(mariadbClient(), [
        '--protocol=tcp',
        '-h',
        '127.0.0.1',
        '-P',
        String(ports.mariadb),
        '-u',
        'root',
        '-e',
        'CREATE DATABASE IF NOT EXISTS test',
      ]).ok,
    fix: `mariadb --protocol=tcp -h 127.0.0.1 -P ${ports.mariadb} -u root -e 'CREATE DATABASE IF NOT EXISTS test'`,
  },
];

const missing = [];

for (const tool of tools) {
  if (tool.ok()) continue;
  if (mayFix && aptInstall(tool.apt) && tool.ok()) continue;
  missing.push(`${tool.name} is missing; fix: ${sudo}apt-get install -y ${tool.apt.join(' ')}`);
}

const down = new Set();
for (const service of services) {
  if (await service.up()) continue;
  if (mayFix) {
    if (!service.installed()) aptInstall(service.apt);
    say(`${service.name} does not answer: starting it`);
    service.start();
    if (await waitFor(service.up, 30)) continue;
  }
  down.add(service);
  missing.push(`${service.name} does not answer; fix: ${service.fix}`);
}

for (const [i, database] of databases.entries()) {
  if (down.has(services[i])) continue; // its server is down: one message is enough
  if (database.ok()) continue;
  if (env.EDGEGATE_PREREQUISITES !== 'check' && database.create() && database.ok()) continue;
  missing.push(`${database.name} is missing; fix: ${database.fix}`);
}

if (missing.length > 0) {
  for (const line of missing) say(line);
  say(
    `${missing.length} missing: the tests need ${missing.length === 1 ? 'it' : 'them'}` +
      (isRoot ? '.' : ' (run as root, or `sudo bash .ci/run`, to install and start them).'),
  );
  process.exit(1);
}
say('chromium, database clients and servers, openssl and sysbench are ready');
