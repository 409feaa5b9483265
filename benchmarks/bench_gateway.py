"""Gateway overhead: `rolecall serve` in front of a fake provider vs calling it directly.

    .venv/bin/python benchmarks/bench_gateway.py [--in-flight 1,100] [--requests 1000]
        [--latency 0.05] [--jitter 0.0] [--rounds 3] [--no-record] [--no-floor]
        [--layer-requests 5000] [--litellm PYTHON | --litellm-url URL --litellm-model MODEL]
        [--workers N] [--compare-src DIR] [--lag] [--serve-workers N] [--pin] [--lean]
    .venv/bin/python benchmarks/bench_gateway.py --doors [--in-flight 1,100] [--rounds 5]

Processes: the fake OpenAI-compatible provider (rolecall.sim.SimServer), the
gateway (`rolecall serve --offline --no-access-log`, recording into a temporary
run log and SQLite store as in production), the two floors (below), with
--compare-src DIR a second gateway importing rolecall from DIR (another
checkout's src: the "gateway before" row, measured in the same rounds), and
this load generator. The client is a minimal keep-alive HTTP/1.1 client on
asyncio streams (benchmarks/_bench_http.py), one connection per in-flight slot,
so the figures measure the servers rather than a client library.

Every request carries its own prompt ("Say hello. #<n>"). The fake provider
waits --latency seconds before answering; with --jitter J each prompt waits
its own delay, uniform in latency * [1 - J, 1 + J) and fixed by the prompt's
text (rolecall.sim.request_latency). A fixed delay keeps closed-loop clients in
lock-step bursts (at 100 in flight every request queues behind the other 99);
real provider latencies vary and break such convoys. Since this process knows
each prompt's delay, it takes each call's excess = measured latency - that
delay, and every "added" figure is a percentile of those excesses through a
server minus the same percentile of the direct calls' excesses, taken per
round; the table prints the median over rounds and, in brackets, the lowest
and highest round. With --jitter 0 that equals the plain difference of latency
percentiles. In each round the servers' order rotates, so none always runs
right after the direct calls.

First table: "direct" and "gateway" p50/p99 are absolute latencies (ms); "gw
req/s" is the gateway run's throughput; "gw CPU/req" the gateway's CPU time per
request, its child processes included (HTTP server + doors + router + provider
adapter + recorder);
"router CPU/req" is ``Router.complete`` driven in this process at the same
concurrency against the same provider (router + adapter alone).

Second table, ms added over direct calls, one line per server:

- gateway: `rolecall serve`.
- bare proxy (benchmarks/_bench_http.py): a raw ASGI app of about 30 lines on
  uvicorn (uvloop and httptools, as `rolecall serve` uses them) that reads the
  body, parses it, swaps the model, forwards it over a small pool of keep-alive
  connections, parses the answer and serializes it back: the least a Python
  ASGI hop adds.
- raw socket (benchmarks/_bench_floor.py): two asyncio Protocols on uvloop
  forwarding the request's bytes over a kept-alive connection per client and
  the answer's bytes back, with only Content-Length framing, no HTTP parser and
  no JSON: the irreducible cost of one more loopback hop through a Python event
  loop on this machine, the floor under every Python proxy.
- lean server (with --lean; benchmarks/_bench_lean.py): the gateway's own chat
  door, router and recording, built from the same config, behind a minimal
  httptools server instead of uvicorn's protocol: what the server layer costs
  the gateway, measured in the same rounds.
- LiteLLM: see below; "n/a" without --litellm-url.

The last column divides each p50 by the raw-socket floor's. --no-floor skips
both floors. The targets of issue 21 (p50 <= 0.3 ms added at 1 in flight,
<= 0.5 ms at 100, p99 <= 2 ms at 50) are checked on the last lines.

A last table isolates the gateway's own work further: its ASGI app called in
this process (no sockets) with a provider that answers at once, against
``Router.complete`` with that same provider: CPU microseconds per request.

LiteLLM column: its proxy's overhead over direct calls, computed as above. With
--litellm PYTHON (the interpreter of the environment benchmarks/litellm-env.sh
builds, LiteLLM pinned there) this script starts LiteLLM's proxy in front of the
same fake provider and measures it in the same rounds, in one run. Or pass
--litellm-url of a LiteLLM proxy started otherwise, routing --litellm-model to
the same fake provider: start one with --serve-sim [--latency S --jitter J],
point LiteLLM at the URL it prints, then run again with --sim-url URL and the
same --latency and --jitter (the excesses need them) plus --litellm-url ... .
Without either the column reads "n/a".

--doors measures, instead of all the above, each front door of the gateway side by
side: the same one-message whole request as chat completions, as /v1/messages
(Anthropic's format, x-api-key) and as /v1/responses (OpenAI's Responses format),
sent by the same client to the same gateway over the same fake provider. Each
door's overhead is its excess percentile minus the direct calls' in the same
round (benchmarks/_bench_doors.py); a door that answers 404 reads "absent".
Figures: benchmarks/_bench_doors.py.

--lag: see "The tail at 50 in flight" below.

--serve-workers N serves the measured gateways (and the compared one) with
`rolecall serve --workers N` instead of one process; their CPU figures then count
the workers and the recording writer.

--workers N adds one line: throughput of `rolecall serve --workers N` against one
worker at the highest --in-flight (same fake provider, same client).

--pin runs the measured servers (gateway, floors, LiteLLM, and their children) on
the machine's last core and this load generator and the fake provider on the
others, as a gateway in production has its host's cores to itself instead of
sharing them with its clients; without it every process shares every core and
the tail measures their scheduling against each other too. It needs two cores
and one worker.

Figures (2026-12, this 2-core machine shared with other test runs, load average
0.6-2; recording on; "before" = the gateway as it was before the doors were served
from the protocol, measured in the same rounds with --compare-src). ms added over
direct calls, median of 5 rounds (lowest..highest round):

    --in-flight 1 --latency 0.05 --requests 400 --warmup 100 --rounds 5
    in flight | server         | p50 added           | p99 added
            1 | gateway        | 1.34 (1.26..1.43)   |  1.82 (0.59..3.58)
            1 | gateway before | 1.48 (1.05..1.53)   |  1.83 (-0.26..2.62)
            1 | bare proxy     | 0.72 (0.51..1.00)   |  1.31 (0.31..5.82)
            1 | raw socket     | 0.35 (0.15..0.36)   |  0.47 (-0.89..1.23)

    --in-flight 50,100 --latency 0.5 --jitter 0.5 --requests 1000 --warmup 200 --rounds 5
           50 | gateway        | 1.24 (1.08..1.56)   | 16.82 (11.44..49.74)
           50 | gateway before | 1.37 (1.09..1.51)   | 30.08 (13.42..41.43)
           50 | bare proxy     | 0.61 (0.40..1.40)   |  3.82 (-3.68..6.85)
           50 | raw socket     | 0.11 (-0.02..1.07)  |  1.89 (-2.59..17.09)
          100 | gateway        | 1.30 (1.17..1.60)   | 28.95 (8.23..61.80)
          100 | gateway before | 1.31 (0.78..1.56)   | 29.72 (-3.02..37.99)
          100 | bare proxy     | 0.59 (0.18..0.71)   |  2.87 (-18.34..9.10)
          100 | raw socket     | 0.03 (-0.05..0.23)  |  1.13 (-15.50..20.43)

    --in-flight 1,10 --latency 0 --requests 2000 --rounds 5 --no-floor (CPU-bound)
            1 | gateway        | 0.68 (0.55..0.72)   |  1.28 (0.68..2.49)
            1 | gateway before | 0.67 (0.58..0.74)   |  1.74 (1.13..1.98)
           10 | gateway        | 2.19 (1.93..2.33)   |  5.89 (5.16..8.26)
           10 | gateway before | 2.68 (2.43..2.80)   |  7.96 (5.58..9.53)

The same machine idle (2026-12-07, load average 0.1-0.4, nothing else running),
the gateway and both floors in the same rounds (no "before" row, no LiteLLM):

    --in-flight 1,50,100 --latency 0.05 --jitter 0.5 --requests 600 --warmup 150 --rounds 5
    in flight | server         | p50 added           | p99 added
            1 | gateway        | 0.75 (0.63..0.85)   |  0.94 (0.66..1.17)
            1 | bare proxy     | 0.44 (0.30..0.52)   |  0.52 (0.20..0.56)
            1 | raw socket     | 0.16 (0.10..0.19)   |  0.22 (0.03..0.37)
           50 | gateway        | 0.55 (0.36..0.84)   |  2.80 (0.94..13.58)
           50 | bare proxy     | 0.40 (0.21..0.57)   | -0.97 (-1.55..3.64)
           50 | raw socket     | 0.13 (-0.05..0.33)  |  0.27 (-0.70..2.60)
          100 | gateway        | 0.48 (0.38..0.54)   |  5.56 (-13.57..16.87)
          100 | bare proxy     | 0.27 (0.22..0.34)   |  2.47 (-12.17..3.16)
          100 | raw socket     | 0.02 (-0.02..0.09)  |  4.11 (-3.26..7.36)
    (gw CPU/req 0.95, 0.25, 0.20 ms at 1, 50, 100 in flight)

    and the gateway alone (--no-floor), 3 rounds per run: p50 added at 100 in
    flight 0.33 and 0.37 ms (one worker), 0.38, 0.45 and 0.42 (--serve-workers 2,
    which on two cores shared with the client and the provider gains nothing);
    p99 added at 50 in flight 0.63-4.44 ms over nine runs, median 1.9.

The same idle machine with --pin (2026-12-07, load average 0.2): the servers on
core 1, the load generator and the fake provider on core 0, LiteLLM 1.81.16 (its
proxy, one worker) in the same rounds:

    --in-flight 1,50,100 --latency 0.05 --jitter 0.5 --requests 400 --warmup 100
    --rounds 3 --pin --litellm benchmarks/.venv-litellm/bin/python
    in flight | server         | p50 added             | p99 added
            1 | gateway        |   0.47 ( 0.09.. 0.70) |   0.63 ( 0.22.. 0.74)
            1 | bare proxy     |   0.26 ( 0.14.. 0.47) |   0.22 ( 0.20.. 0.84)
            1 | raw socket     |   0.07 (-0.10.. 0.16) |   0.19 ( 0.01.. 0.21)
            1 | LiteLLM        |   5.40 ( 3.72.. 5.82) |   7.22 ( 5.53.. 7.30)
           50 | gateway        |   0.13 ( 0.13.. 0.14) |  -0.52 (-2.23.. 3.50)
           50 | bare proxy     |   0.03 ( 0.02.. 0.10) |  -2.01 (-2.29..-1.66)
           50 | raw socket     |   0.03 (-0.05.. 0.06) |  -0.47 (-0.89..-0.41)
           50 | LiteLLM        |  94.62 (87.78..97.98) | 332.54 (326.68..406.07)
          100 | gateway        |   0.10 ( 0.08.. 0.17) |  -1.36 (-3.56..-0.54)
          100 | bare proxy     |   0.05 ( 0.01.. 0.10) |  -2.48 (-3.03..-0.83)
          100 | raw socket     |   0.07 ( 0.06.. 0.09) |  -0.47 (-0.67.. 6.61)
          100 | LiteLLM        | 217.49 (213.09..221.75) | 624.09 (567.19..921.58)
    (gw CPU/req 0.48, 0.14, 0.14 ms at 1, 50, 100 in flight)

    and the same without LiteLLM, --requests 600 --warmup 150 --rounds 5: p50
    added at 1 in flight 0.71 (0.68..0.89) (bare proxy 0.51, raw socket 0.15),
    at 50 0.16 (0.09..0.36) with p99 -0.43 (-1.34..1.38), at 100 0.18
    (0.07..0.40); --in-flight 50 --requests 3000 --warmup 300 --rounds 3
    --no-floor: p99 added -1.30 (-4.61..-1.26) pinned against 3.11 (-0.89..4.35)
    unpinned, p50 0.19 against 0.50, in back-to-back runs.

A negative p99 "added" says the server's tail is below what this machine resolves:
the direct calls' own tail (the client and the provider contending for core 0)
is larger than what a hop adds. Pinned, the 50-in-flight p99 and the
100-in-flight p50 targets hold with room; the 1-in-flight one holds in some
rounds, not in the median: 0.47, 0.71 and, in a third run (--in-flight 1
--requests 600 --warmup 150 --rounds 5 --pin, load average 0.0), 0.83 (0.32..0.91)
ms, with the raw-socket floor at 0.07, 0.15 and 0.31 and the bare proxy at 0.26,
0.51 and 0.40: the machine's own noise moves all three rows together.

So on an idle machine, unpinned, the 100-in-flight target holds (0.48 ms; 0.33-0.45 alone)
and the 50-in-flight p99 target holds in about half the runs: its rounds spread
over more than 10 ms, as the floors' do. The 1-in-flight target does not: the
raw-socket floor itself takes half of it, and a 50 ms wait costs the Python work
after it 3-5x its warm time (below); the bare ASGI proxy, which parses HTTP and
JSON but routes and records nothing, already adds 0.44 ms.

On the loaded machine of the first tables the targets were further off: the
raw-socket floor there took 0.16-0.35 ms at 1 in flight, the bare proxy 0.5-0.7
ms, and the floor's own p99 at 50 in flight spread over 1.9-10 ms (scheduling
noise of four busy processes on two cores).

Where the time goes:

- Inside the gateway, per call (benchmarks/_bench_phases.py, timestamps at the
  protocol's data_received, the adapter's request write, the adapter's
  data_received and the response write; two runs each): with the provider at
  50 ms and one call in flight, request in -> provider request written 390-470
  us, provider answer in -> response written 415-470 us; with a provider
  answering at once (the same code, run back to back) 195-235 us and 155-185 us;
  recording off is no faster (458/470 us against 387/416 on in the same minute).
  The same Python work runs 2-2.5x slower after the process has slept 50 ms
  between calls (cold caches and branch predictors on a machine where other
  processes ran meanwhile): the "cost appears only when the gateway idles while
  the provider thinks" of issue 21 is the path's length, paid cold, not
  waiting, timers or thread hand-offs. It scales with how much code a call
  runs, so only a shorter path cuts it.
- Why cold (benchmarks/_bench_wake.py, 2026-12-07): the step is at 2-3 ms of
  idleness (_bench_phases.py, provider at 2 ms: in 89 us, out 79 us; at 5 ms:
  234 and 217; at 50 ms: 237 and 280; at once: 54 and 46), and plain Python
  code shows it alone: 6-10 us warm, 140-210 us after a 50 ms sleep, 8-46 us
  after a 50 ms busy loop. The virtual CPU halts while idle and the code after
  the wake pays for it; the guest's halt-polling does not cover waits this long.
  _bench_phases.py now times seven steps of a call: each is 3-7x slower after
  the wait, so the cost is spread over the path, not held by one step.
  A prototype gateway that never lets its loop block (a call_soon callback
  re-arming itself) measured 0.55 ms p50 added at 1 in flight against 0.83 for
  main in the same rounds (p99 0.51 against 1.87), at 51 ms of CPU per request:
  a whole core burnt for every provider call. Not kept: an LLM call waits
  seconds, and a gateway that spins through them takes the core from everything
  else on the host. Keeping only the core awake is not enough: a SCHED_IDLE busy
  loop of another process on the servers' core during a --pin run (--in-flight 1
  --requests 400 --warmup 100 --rounds 5) left the figures where they were:
  gateway 0.48 (0.23..0.82) ms added, bare proxy 0.24, raw socket 0.12, gw
  CPU/req 0.47 ms (of which about 0.1 is the idle gateway's own 2 ms/s of
  timers, spread over 19 requests a second). What the in-loop spin kept warm was
  the gateway's own code and data.
- What that path is, and what was cut from it: benchmarks/_bench_profile.py's
  docstring (table, cuts, figures). No part dominates; JSON went from 7% to 1% of
  the profiled CPU (orjson), 17% fewer Python calls. gw CPU/req against main in
  the same rounds: 0.405 vs 0.505 ms at 10 in flight, 0.400 vs 0.460 at 100; p50
  added at 1 in flight, provider at 50 ms: 1.29 vs 1.35 ms, within the spread.
- Cut and kept: the doors' POSTs are served by the HTTP protocol itself
  (gateway/hotpath.py): no ASGI app dispatch, no Response.__call__ and two send
  messages, no URL parsing, status line + headers + body in one write instead of
  two. Pays when the gateway is busy (10 in flight, instant provider: 2.19 vs
  2.68 ms added, rounds not overlapping); at 1-100 in flight with a slow provider
  it is within the rounds' spread (1.34 vs 1.48, 1.24 vs 1.37, 1.30 vs 1.31 ms).
  The header and body deadlines use one timer per connection moved lazily
  instead of two new timers and three cancels per request (~5 us warm per
  request by uvloop's call_later + cancel cost; below this benchmark's
  resolution).
- Measured and dropped: gc.freeze() after startup with a first-generation
  threshold of 20,000 (1.09 vs 1.05 ms at 1 in flight, 0.90 vs 0.82 at 100, p99
  the same); the collections seen in the gateway under load take 1.5-2.5 ms
  (generation 1), not the tail. Counted again on 2026-12-07 by a gc.callbacks
  probe in the serving process (--in-flight 50 --latency 0.05 --jitter 0.5
  --requests 3000 --rounds 2 --no-floor, ~6,600 requests): 100 ms of collections
  in all, 15 us a request (6% of gw CPU/req): 225 of generation 0 (0.28 ms
  each), 21 of generation 1 (1.5 ms), 2 full ones (2.5 ms); 11-16 pauses over
  1 ms. A first-generation threshold of 10,000 halves the total (48 ms) but not
  the pauses over 1 ms (13-16: a generation-0 collection then takes 2.8 ms);
  a second gc.freeze() 3 s after startup (`rolecall serve` freezes what startup
  built already) changes neither. p50 and p99 added stayed within
  the rounds' spread in all four settings.
- A faster server library, measured and not chosen: granian 2.8.9 (Rust HTTP
  server, ASGI interface, uvloop, one worker, HTTP/1 only) serving the same bare
  proxy app, against it on uvicorn in the same rounds (--in-flight 1,50
  --requests 300 --warmup 100 --rounds 3, its URL passed as --litellm-url):
  p50 added at 1 in flight 0.93 ms against uvicorn's 0.53, at 50 in flight 0.49
  against 0.21; p99 at 50 in flight 1.36 against 3.28. Only its tail was
  better, and by less than pinning buys (above); at one call in flight, the
  target still missed, it is the slower server.
- A server of our own, priced before building it: --lean serves the gateway's
  own chat door, router and recording behind a minimal httptools server
  (benchmarks/_bench_lean.py, none of the protocol's limits). Three --pin runs
  at 1 in flight (2026-12-07, load average 0.0-0.2; --latency 0.05 --jitter
  0.5, 400-600 requests, 5 rounds), p50 added in ms:

        gateway             0.71    0.74    0.73
        lean server         0.63    0.46    0.69
        bare proxy          0.40    0.41    0.48
        raw socket          0.20    0.16    0.11

  (the first run with the prototype of _bench_lean.py passed as --litellm-url).
  uvicorn's protocol and request cycle, with the limits on them, cost the
  gateway 0.04-0.28 ms of the 0.7 here; the door, router and recording behind
  the leanest server still add 0.46-0.69 ms, so a server of our own (which
  would also have to carry the streamed responses, the other routes and every
  limit of gateway/protocol.py) would not bring the 1-in-flight target within
  reach, and was not built. At 100 in flight (second run) the lean server adds
  0.15 ms against the gateway's 0.23.
- The same path compiled, measured and not adopted (2026-12-07): mypyc 2.4.1
  compiled 20 modules of the path (router, attempt, chain, task, outcomes, retry,
  memory health, the chat door's request and format modules, hotpath, exchange, body,
  auth, prom, recorder, events, types, _json, the OpenAI wire format, provider
  errors); the adapter, the HTTP client and the protocol did not compile (async
  generators unsupported, a compiled class under uvicorn's, an internal mypyc
  error). Against the interpreted gateway in the same rounds, --pin: p50 added
  at 1 in flight 0.69 (0.64..0.81) ms compiled against 0.64 (0.12..0.74), CPU
  per request 0.85 against 0.83 ms; provider answering at once, CPU per request
  0.175 against 0.160 ms at 1 in flight and 0.110 for both at 10. The Python
  this compiles is not where the time is, warm or cold.
- The virtual CPU kept from halting, measured and not adopted (2026-12-07): this
  VM boots with haltpoll and guest_halt_poll_ns=0, so an idle vCPU halts at
  once. Holding the kernel's PM QoS request /dev/cpu_dma_latency at 0 (as
  tuned's latency profiles do; the idle vCPU then polls) takes
  _bench_wake.py's 50 ms row from 139-175 us to 37 us, and a --pin --lean run
  at 1 and 100 in flight (400 requests, 3 rounds) to: gateway 0.47 (0.40..0.84)
  ms added, lean server 0.37, bare proxy 0.28, raw socket -0.01; CPU per
  request 0.63 ms against 0.97 in the run before it without the request. The
  target is still missed, by the gateway and by the lean server, and the host
  pays a polling vCPU for every idle one, so rolecall does not hold it.
  (Disabling the halt state in sysfs instead changed nothing: 0.62 ms, as the
  haltpoll governor does not read that switch.)
- The p99 at 50-100 in flight (17-30 ms vs the bare proxy's 3-4 ms): see below.

The tail at 50 in flight. --lag serves the gateways through benchmarks/_bench_lag.py:
a 1 ms sleep on the loop, a stall being a wake-up > 3 ms late, told apart by the
loop thread's CPU and run-queue time and by overlap with a recorder flush or a GC
(its 1000 wake-ups a second add to gw CPU/req: compare --lag runs with each other).
Each run: --lag --in-flight 50 --latency 0.5 --jitter 0.5 --requests 1000 --warmup 200
--rounds 5 --no-floor --compare-src <main's src>, recording on unless said; ms added,
median of 5 rounds (lowest..highest); stalls per 1000 requests (2026-12, load 0.4-0.7):

    gateway vs main (same rounds)  | p50 added            | p99 added             | stalls
    A/A, recording off             | 1.30 (1.08..1.85)    | 28.06 (8.58..34.44)   | 11.7
                           main    | 1.41 (1.00..1.69)    | 18.18 (15.92..24.97)  | 10.2
    A/A, recording on (*)          | 1.50 (1.15..1.81)    | 22.03 (14.33..30.90)  | 21.9
                           main    | 1.41 (1.07..2.58)    | 20.03 (18.71..35.16)  | 34.2
    (a) sys.setswitchinterval 1 ms | 1.36 (0.97..1.43)    |  8.77 (3.47..50.86)   |  7.5
                           main    | 1.18 (0.90..1.36)    | 18.24 (3.34..21.16)   |  6.0
    (a) again (*)                  | 1.05 (0.83..1.43)    |  6.67 (2.62..30.87)   | 14.8
                           main    | 1.28 (1.05..1.64)    | 15.91 (7.98..30.84)   | 25.4
    (a) again, 8 rounds (*)        | 1.42 (1.14..2.00)    | 20.44 (5.43..28.57)   | 24.4
                           main    | 1.35 (1.17..1.65)    | 16.27 (8.53..27.73)   | 25.6
    (b) flush in chunks of 32 rows,| 1.48 (1.37..1.62)    | 22.86 (9.48..31.46)   | 15.4
        time.sleep(0) between main | 1.36 (1.25..1.89)    | 18.73 (14.49..22.07)  | 19.0
    (*) another benchmark ran on the machine meanwhile

- The recorder is not the tail: with recording off the p99 is as high (18-28 ms)
  and stalls are as frequent; 0-21 stalls of 31-210 per run (at most 17%)
  overlapped a flush. Of the stalls, 5-28% had the loop running its own callbacks
  (a burst of requests), the rest had it waiting; in the runs that measured it,
  34-90% of the waiting stalls were spent in the kernel's run queue (2 cores, 4-6
  busy processes); the rest the probe cannot attribute (vCPU steal, page faults).
- Two identical gateways in the same rounds differ by up to 10 ms p99: only a
  change beyond that shows here. (a) and (b) do not (p99 within the spread; (a)
  lower in two runs, higher in the third); (b) also costs 50% more recording CPU
  (95.8 vs 62.5 ms per 1000 requests: more transactions). Both were reverted. What
  the probe points at is CPU contention: less CPU per call, or spare cores.
- Again on the idle machine (2026-12-07; --lag --in-flight 50 --latency 0.05
  --jitter 0.5 --requests 3000 --warmup 300 --rounds 3 --no-floor, five runs):
  1.9-2.9 stalls per 1000 requests (median 3.5-4.3 ms, max 4.9-8.0); of those
  with the loop waiting, 70-90% waited mostly for a core; flushes took 10-12 ms
  of CPU per 1000 requests. sys.setswitchinterval(0.001) in the gateway, two
  runs against two without: 2.4 and 2.7 stalls per 1000 against 1.9 and 2.9,
  p99 added 4.22 and 0.35 ms against 2.88 and 1.93: no difference beyond the spread.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _bench_doors import doors_main
from _bench_http import server_stack
from _bench_layer import layer_cost, router_cpu_per_request, run_loop
from _bench_load import Target, measure, provider_delays_ms
from _bench_procs import (
    GATEWAY_KEY,
    LITELLM_KEY,
    SIM_KEY,
    pin_servers,
    process_cpu_seconds,
    start_bare_proxy,
    start_gateway,
    start_lean,
    start_litellm,
    start_raw_floor,
    start_sim,
    stop,
    unreachable,
)
from _bench_report import (
    Pair,
    Row,
    median_pair,
    minus,
    pct,
    percentiles,
    print_lag,
    print_layer,
    print_ratio,
    print_table,
    read_lag,
)


async def run(
    args: argparse.Namespace,
    direct: Target,
    gateway: Target,
    gateway_pid: int,
    floors: list[Target],
    before_pid: int | None = None,
) -> list[Row]:
    """Each --in-flight level: direct calls, then the gateway and every floor, round by round."""
    if args.litellm_url:
        floors = [
            *floors,
            Target("LiteLLM", args.litellm_url, args.litellm_model, args.litellm_key),
        ]
    rows = []
    for in_flight in args.in_flight:
        requests = max(args.requests, in_flight * 10)
        delays = provider_delays_ms(args.latency, args.jitter, requests)
        warm = await measure(direct, in_flight, delays[: args.warmup])
        if pct(warm.excess, 0.01) < -2:  # answers before their delay: not the sim we think
            raise SystemExit(
                "the fake provider answers sooner than --latency/--jitter predict: pass the "
                "values it was started with"
            )
        for target in (gateway, *floors):
            await measure(target, in_flight, delays[: args.warmup])
        direct_p: list[Pair] = []
        gateway_p: list[Pair] = []
        added: dict[str, list[Pair]] = {name: [] for name in ("gateway", *(t.name for t in floors))}
        rps: list[float] = []
        cpu: list[float] = []
        before_cpu: list[float] = []
        for round_ in range(args.rounds):
            d = await measure(direct, in_flight, delays)
            direct_excess = percentiles(d.excess)
            direct_p.append(percentiles(d.latency))
            # The servers' order rotates so that none always runs right after the direct calls.
            order = [gateway, *floors]
            shift = round_ % len(order)
            for target in order[shift:] + order[:shift]:
                started = time.perf_counter()
                cpu_before = process_cpu_seconds(gateway_pid)
                before_cpu_start = process_cpu_seconds(before_pid) if before_pid else None
                sample = await measure(target, in_flight, delays)
                added[target.name].append(minus(percentiles(sample.excess), direct_excess))
                if target.name == "gateway before" and before_pid and before_cpu_start is not None:
                    before_cpu_end = process_cpu_seconds(before_pid)
                    if before_cpu_end is not None:
                        before_cpu.append((before_cpu_end - before_cpu_start) * 1000 / requests)
                if target is not gateway:
                    continue
                cpu_after = process_cpu_seconds(gateway_pid)
                rps.append(requests / (time.perf_counter() - started))
                if cpu_before is not None and cpu_after is not None:
                    cpu.append((cpu_after - cpu_before) * 1000 / requests)
                gateway_p.append(percentiles(sample.latency))
        rows.append(
            Row(
                in_flight,
                median_pair(direct_p),
                median_pair(gateway_p),
                added,
                statistics.median(rps),
                statistics.median(cpu) if cpu else None,
                await router_cpu_per_request(args.sim_base, in_flight, requests),
                before_cpu,
                cpu,
            )
        )
    return rows


def settings_line(args: argparse.Namespace) -> str:
    latency_ms = args.latency * 1000
    if args.jitter:
        low, high = latency_ms * (1 - args.jitter), latency_ms * (1 + args.jitter)
        delay = f"{latency_ms:.0f} ms, jitter {args.jitter:g} ({low:.0f}-{high:.0f} ms by prompt)"
    else:
        delay = f"{latency_ms:.0f} ms, jitter 0 (fixed)"
    floors = "off" if args.no_floor else f"bare proxy on uvicorn {'+'.join(server_stack())}"
    floors += "" if args.no_floor else ", raw socket on " + server_stack()[0]
    return (
        f"fake provider latency {delay}; >= {args.requests} requests per round; recording "
        f"{'off' if args.no_record else 'on'}; floors {floors}"
    )


def workers_ratio(args: argparse.Namespace, sim_base: str, workdir: Path) -> tuple[float, float]:
    """Median throughput (req/s) of one gateway worker and of ``--workers N``."""
    in_flight = max(args.in_flight)
    requests = max(args.requests, in_flight * 10)
    delays = provider_delays_ms(args.latency, args.jitter, requests)
    rates = []
    for workers in (1, args.workers):
        run_dir = workdir / f"workers-{workers}"
        run_dir.mkdir()
        proc, url = start_gateway(sim_base, run_dir, not args.no_record, workers)
        try:
            target = Target("gateway", url, "coder", GATEWAY_KEY)
            run_loop(measure(target, in_flight, delays[: args.warmup]))
            rounds = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                run_loop(measure(target, in_flight, delays))
                rounds.append(requests / (time.perf_counter() - started))
            rates.append(statistics.median(rounds))
        finally:
            stop(proc)
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--in-flight",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[1, 100],
        help="comma-separated concurrency levels (default 1,100)",
    )
    parser.add_argument("--requests", type=int, default=1000, help="requests per round and row")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--latency", type=float, default=None, help="fake provider latency, s (default 0.05)"
    )
    parser.add_argument(
        "--jitter",
        type=float,
        default=None,
        help="spread of the fake provider's latency: each prompt waits its own delay in "
        "latency * [1 - J, 1 + J) (default 0: fixed)",
    )
    parser.add_argument(
        "--no-floor", action="store_true", help="skip the floors (bare proxy, raw socket)"
    )
    parser.add_argument(
        "--litellm-url",
        default=None,
        help="[LiteLLM comparison] base URL (with /v1) of a LiteLLM proxy routing to the same "
        "fake provider; the column reads n/a without it",
    )
    parser.add_argument(
        "--litellm",
        metavar="PYTHON",
        default=None,
        help="[LiteLLM comparison] python of the environment benchmarks/litellm-env.sh builds: "
        "its proxy is started in front of the same fake provider and measured in the same rounds",
    )
    parser.add_argument("--litellm-model", default="coder", help="[LiteLLM comparison] model")
    parser.add_argument("--litellm-key", default="sk-litellm", help="[LiteLLM comparison] key")
    parser.add_argument(
        "--serve-sim",
        action="store_true",
        help="[LiteLLM comparison] only start the fake provider, print its URL and wait, so a "
        "LiteLLM proxy can be pointed at it; then run again with --sim-url",
    )
    parser.add_argument(
        "--no-record", action="store_true", help="gateway without run log / metrics store"
    )
    parser.add_argument(
        "--layer-requests", type=int, default=5000, help="requests for the in-process layer cost"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="also print the throughput of `rolecall serve --workers N` against 1 worker "
        "(at the highest --in-flight; recording as set)",
    )
    parser.add_argument(
        "--serve-workers",
        type=int,
        default=1,
        help="the measured gateways run `rolecall serve --workers N` (default 1)",
    )
    parser.add_argument(
        "--doors",
        action="store_true",
        help="instead of the tables above: the added latency of each front door (chat "
        "completions, /v1/messages, /v1/responses) side by side; a door the gateway "
        "does not have reads 'absent'",
    )
    parser.add_argument(
        "--compare-src",
        default=None,
        metavar="DIR",
        help="also measure, in the same rounds, a gateway importing rolecall from DIR (e.g. "
        "another checkout's src): the 'gateway before' row",
    )
    parser.add_argument(
        "--lag",
        action="store_true",
        help="serve the gateways through benchmarks/_bench_lag.py and print their event "
        "loops' stalls (> 3 ms late) and what overlapped them",
    )
    parser.add_argument(
        "--lean",
        action="store_true",
        help="also measure the gateway's chat door behind a minimal httptools server "
        "(benchmarks/_bench_lean.py): the 'lean server' row",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the measured servers on the last core and this load generator and the fake "
        "provider on the others (the servers' children too)",
    )
    parser.add_argument(
        "--sim-url",
        default=None,
        help="use a running fake provider (with /v1); pass the --latency and --jitter it was "
        "started with",
    )
    args = parser.parse_args()
    if args.sim_url and (args.latency is None or args.jitter is None):
        parser.error("with --sim-url, pass the --latency and --jitter the fake provider runs with")
    args.latency = 0.05 if args.latency is None else args.latency
    args.jitter = 0.0 if args.jitter is None else args.jitter
    if not 0 <= args.jitter <= 1 or args.latency < 0:
        parser.error("--jitter must be between 0 and 1 and --latency at least 0")
    if args.sim_url and (problem := unreachable(args.sim_url)):
        parser.error(f"--sim-url {args.sim_url}: {problem}; pass the URL --serve-sim prints")
    if args.pin and (args.workers or args.serve_workers > 1):
        parser.error("--pin gives the servers one core: measure several workers without it")
    command = "python benchmarks/bench_gateway.py " + shlex.join(sys.argv[1:])
    if args.pin:
        servers, others = pin_servers()
        rest = "load generator" if args.sim_url else "load generator and fake provider"
        print(f"servers on core {sorted(servers)}, {rest} on {sorted(others)}")

    sim, sim_base = (None, args.sim_url) if args.sim_url else start_sim(args.latency, args.jitter)
    try:
        if args.serve_sim:
            print(
                f"fake provider: {sim_base} (key {SIM_KEY}, model sim-model); benchmark it with "
                f"--sim-url {sim_base} --latency {args.latency:g} --jitter {args.jitter:g}",
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
            return
        if args.doors:
            doors_main(args, sim_base, command)
            return
        with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as procs:
            names = ("gateway", "gateway before") if args.compare_src else ("gateway",)
            lag = {
                name: Path(tmp) / f"lag-{n}.json" if args.lag else None
                for n, name in enumerate(names)
            }
            gateway_proc, gateway_url = start_gateway(
                sim_base,
                Path(tmp),
                not args.no_record,
                args.serve_workers,
                lag_report=lag["gateway"],
            )
            procs.callback(stop, gateway_proc)
            floors = []
            before_pid = None
            if args.compare_src:
                (Path(tmp) / "compared").mkdir()
                before_proc, before_url = start_gateway(
                    sim_base,
                    Path(tmp) / "compared",
                    not args.no_record,
                    args.serve_workers,
                    src=args.compare_src,
                    lag_report=lag.get("gateway before"),
                )
                procs.callback(stop, before_proc)
                before_pid = before_proc.pid
                floors.append(Target("gateway before", before_url, "coder", GATEWAY_KEY))
            if not args.no_floor:
                bare_proc, bare_url = start_bare_proxy(sim_base)
                procs.callback(stop, bare_proc)
                floors.append(Target("bare proxy", bare_url, "sim-model", "unused"))
                raw_proc, raw_url = start_raw_floor(sim_base)
                procs.callback(stop, raw_proc)
                # Bytes pass through untouched: the client sends the provider's model and key.
                floors.append(Target("raw socket", raw_url, "sim-model", SIM_KEY))
            if args.lean:
                (Path(tmp) / "lean").mkdir()
                lean_proc, lean_url = start_lean(sim_base, Path(tmp) / "lean", not args.no_record)
                procs.callback(stop, lean_proc)
                floors.append(Target("lean server", lean_url, "coder", GATEWAY_KEY))
            if args.litellm:
                litellm_proc, args.litellm_url = start_litellm(args.litellm, sim_base, Path(tmp))
                procs.callback(stop, litellm_proc)
                args.litellm_model, args.litellm_key = "coder", LITELLM_KEY
            args.sim_base = sim_base
            rows = run_loop(
                run(
                    args,
                    Target("direct", sim_base, "sim-model", SIM_KEY),
                    Target("gateway", gateway_url, "coder", GATEWAY_KEY),
                    gateway_proc.pid,
                    floors,
                    before_pid,
                )
            )
            procs.close()  # the gateways write their --lag reports as they stop
            reports = {name: read_lag(path) for name, path in lag.items() if path is not None}
        with tempfile.TemporaryDirectory() as tmp:
            layers = [
                (n, *run_loop(layer_cost(n, args.layer_requests, not args.no_record, Path(tmp))))
                for n in args.in_flight
            ]
        ratio = None
        if args.workers:
            with tempfile.TemporaryDirectory() as tmp:
                ratio = workers_ratio(args, sim_base, Path(tmp))
    finally:
        if sim is not None:
            stop(sim)
    print_table(rows, args.rounds, settings_line(args), command)
    print_layer(layers)
    print_lag(reports)
    if ratio is not None:
        print_ratio(max(args.in_flight), args.rounds, args.workers, *ratio)


if __name__ == "__main__":
    main()
