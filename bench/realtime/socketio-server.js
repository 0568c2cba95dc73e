// The baseline of bench/realtime: Socket.IO 4 on Node 20 relaying the same database commits to
// the same clients. Each client authenticates with the same HS256 token (verified with
// jsonwebtoken) and is put in the rooms `user:<sub>` and `dispatch`; the server LISTENs on
// careplane_realtime and reads new rows of private.realtime_events by id (a plain id cursor:
// cheaper than careplane's commit-safe watermark read, and able to skip late commits).
const http = require('node:http');
const { Server } = require('socket.io');
const jwt = require('jsonwebtoken');
const pg = require('pg');

const port = Number(process.env.PORT || 0);
const secret = process.env.SUPABASE_JWT_SECRET;
const db = new pg.Client({ connectionString: process.env.DATABASE_URL });
const listener = new pg.Client({ connectionString: process.env.DATABASE_URL });

const server = http.createServer();
const io = new Server(server, { transports: ['websocket'], serveClient: false });
io.use((socket, next) => {
  try {
    socket.data.user = jwt.verify(socket.handshake.auth.token, secret, { algorithms: ['HS256'], audience: 'authenticated' });
    next();
  } catch (e) { next(new Error('Unauthorized')); }
});
io.on('connection', (socket) => {
  socket.join(`user:${socket.data.user.sub}`);
  socket.join('dispatch');
});

let last = 0n; let reading = false; let again = false;
async function read() {
  if (reading) { again = true; return; }
  reading = true;
  try {
    do {
      again = false;
      const { rows } = await db.query(
        'select id::text, topic, event, payload from private.realtime_events where id > $1 order by id limit 1000', [last.toString()]);
      for (const r of rows) {
        last = BigInt(r.id);
        io.to(r.topic).emit('broadcast', { event: r.event, payload: r.payload, id: r.id });
      }
      if (rows.length === 1000) again = true;
    } while (again);
  } finally { reading = false; }
}

(async () => {
  await db.connect(); await listener.connect();
  const { rows } = await db.query('select coalesce(max(id), 0)::text as id from private.realtime_events');
  last = BigInt(rows[0].id);
  listener.on('notification', () => { read().catch((e) => console.error(e)); });
  await listener.query('listen careplane_realtime');
  setInterval(() => read().catch((e) => console.error(e)), 1000);
  server.listen(port, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${server.address().port}`));
})();
