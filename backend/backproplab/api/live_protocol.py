"""The `/api/live` WebSocket protocol in words, for client authors: the README's
section "The live protocol" is this text (a test keeps them equal), and /docs shows
it in the API's description."""

PROTOCOL = """\
`WS /api/live` streams one run at a time per connection. Every message in either
direction is one text frame holding a strict JSON object with a `"type"`; numbers
that are NaN or ±∞ arrive as the strings `"NaN"`, `"Infinity"`, `"-Infinity"` (plain
`JSON.parse` reads every frame). Browsers must connect from the server's own origin
or one listed in `BACKPROPLAB_ALLOWED_ORIGINS`.

Client → server:

| type | field | meaning |
|---|---|---|
| `start` | `config` | a RunConfig object (`GET /api/schema/config`): validated, then run |
| | `paused` | optional bool: start paused (advance with `step`) |
| `update` | `config`, `paused` | the same as `start` (sent when a control moves) |
| `pause` | | pause the run between two steps |
| `resume` | | resume a paused run |
| `step` | | pause the run and advance it by one step, recorded and sent |
| `stop` | | cancel the run, wait for it to end; answered by `stopped` |
| `ping` | `t` | optional, any JSON value; answered by `pong` with the same `t` |

A `start` or `update` while a run goes on cancels that run first and drops its unsent
frames. `pause`, `resume`, `step` and `stop` need a run in progress (else an `error`
with code `no_run`).

Server → client:

| type | field | meaning |
|---|---|---|
| `run` | `id` | a run started; its id (also for `GET /api/runs/{id}/export`) |
| | `theory` | `null`: the prediction follows in a `theory` frame |
| | `environment` | versions, `engine`, `device`, `dtype` |
| `step` | `run` | a recorded step of this run id |
| | `step` | the step's index |
| | `loss`, `time_s` | the training loss; seconds since training began |
| | `accuracy` | fraction correct; `null` for regression on `gaussian` data |
| | `test_accuracy` | on `digits` and `mnist1d` only: fraction of the held-out part correct |
| | `layers` | one object per layer, input side first (fields below) |
| | `jacobian_sv` | singular values of the input-output Jacobian, when recorded |
| | `overflow` | `{step, layer}`, only on the step where values first turn non-finite |
| `theory` | `run`, `theory` | the mean-field prediction (as `GET /api/theory`), after step 0 |
| `done` | `id`, `steps` | the run finished; how many steps it recorded |
| `stopped` | `id` | answer to `stop`: the run's id |
| | `kept` | whether the run store holds it (a run stopped before its first step does not) |
| `pong` | `t` | answer to `ping` |
| `error` | `code` | what went wrong, as a code (list below) |
| | `message` | the same in words |
| | `field` | the config field at fault (dotted, e.g. `record.every`) or `null` |
| | `run` | the run whose own failure it is (`run_failed`, `internal`), else absent |

Each object of `layers` (and of a step in the exported record): `index`, `kind`
(`hidden` or `output`), `z_mean`, `z_std`, `a_mean`, `a_std` (pre-activations z and
activations a), `saturated_frac`, `dead_frac`, `delta_norm` (‖δ(l)‖), `grad_w_norm`,
`grad_b_norm`, `weight_norm`, `update_ratio`, `a_hist` and `delta_log_hist`
(`{lo, hi, counts}`; the δ histogram, of log10 |δ|, also `zero` and `nonfinite`
counts), `delta_sample` (a few components of δ(l)).

Error codes: `bad_json` (not JSON), `bad_message` (not an object with a `type`, or a
`start`/`update` without a `config` object), `unknown_type`, `invalid_config` (the
first invalid field, in `field`), `no_run`, `busy` (the server holds its limit of runs
or of memory for them; the frame's `retry_after` gives the seconds to wait; close
1013 follows), `too_large` (a message over the size limit, close 1009 follows; or a
run whose estimated memory is over `BACKPROPLAB_MAX_RUN_BYTES`, named with the figure
and the limit: the connection stays open), `run_failed` (the run stopped with a
reason, e.g. its compute-time limit), `internal` (a server fault; no traceback is sent).

Step frames are throttled to `BACKPROPLAB_FRAME_RATE` per second per connection: when
the client or the throttle is behind, only the newest waiting step is sent (the
others are kept on the server: fetch `GET /api/runs/{id}/export` after `done` for
every recorded step). `run`, the first step, the `overflow` step, `theory`, `done`,
`stopped`, `pong` and `error` frames are never dropped and keep their order.

Close codes:

| code | when |
|---|---|
| 1000 | normal close by the client |
| 1008 | policy: the `Origin` is not allowed (the handshake is refused: browsers see 1006, a 403) |
| | (a client that reads nothing for `BACKPROPLAB_SEND_TIMEOUT` s is cut off: 1006) |
| 1009 | a message over `BACKPROPLAB_MAX_MESSAGE_BYTES`, after an `error` `too_large` |
| | (uvicorn's own limit, set to the same size, may close without the frame) |
| 1012 | the server shuts down or restarts (sent by uvicorn); reconnect |
| 1013 | the server is full, after an `error` `busy`; reason "server full; retry in N s" |

Closing the connection cancels its run and gives back its place and memory.
"""
