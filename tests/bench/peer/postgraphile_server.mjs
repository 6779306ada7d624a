// The peer under benchmark: PostGraphile 5 over the benchmark database, served by Node's
// own HTTP server, in WORKERS processes sharing one port (node:cluster). It enforces
// nothing; it is what a team could run instead. Started by tests/bench/bench_peer.py.
import cluster from "node:cluster";
import { createServer } from "node:http";

const workers = Number(process.env.WORKERS || "1");
const port = Number(process.env.PORT);

if (cluster.isPrimary && workers > 1) {
  for (let n = 0; n < workers; n++) cluster.fork();
} else {
  const { postgraphile } = await import("postgraphile");
  const { PostGraphileAmberPreset } = await import("postgraphile/presets/amber");
  const { makePgService } = await import("postgraphile/adaptors/pg");
  const { grafserv } = await import("postgraphile/grafserv/node");
  const preset = {
    extends: [PostGraphileAmberPreset],
    pgServices: [
      makePgService({
        connectionString: process.env.DATABASE_URL,
        schemas: ["phigate"],
        poolConfig: { max: Number(process.env.POOL || "10") },
      }),
    ],
    grafserv: { port, graphiql: false, watch: false },
    grafast: { explain: false },
  };
  const pgl = postgraphile(preset);
  const serv = pgl.createServ(grafserv);
  const server = createServer();
  serv.addTo(server).then(() => server.listen(port, "127.0.0.1"));
}
