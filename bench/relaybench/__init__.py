"""Benchmark git-relay against `git clone --mirror` + `git push --mirror`.

What is measured
----------------
For each generated repository size, four scenarios, each run by both tools
against the same real smart-HTTP servers on 127.0.0.1 (nginx + fcgiwrap +
`git http-backend`, Basic auth, protocol v2 passed through):

  first    mirror into an empty destination repository;
  commit   the source gained one commit on its main branch;
  rewrite  one branch of the source was rewritten (force-pushed);
  noop     source and destination already agree;
  capped   (on request) first mirror into a destination behind a second
           nginx server that answers 413 to bodies over --cap, git-relay
           with --dest-max-push-bytes just under it; git's push must fail
           and leave the destination unchanged;
  capped-learnt  the same, git-relay without the flag (it learns the cap
           from the refusal).

The two tools:

  git-relay  `git-relay mirror SRC DST` (one process, nothing on local disk);
  git        `git clone --mirror SRC tmp` then `git -C tmp push --mirror DST`,
             the usual mirror job, which runs from scratch every time as it
             does on a fresh CI agent.

For every run we record:

  wall      elapsed time of the whole job (both git commands for `git`);
  cpu       user + system CPU time of the job's processes and all their
            descendants (git's remote-http, index-pack, pack-objects...),
            from the rusage of each finished command (wait4: Linux fills it
            in for the child and every descendant it waited for);
  rss       peak resident set size: the largest `ru_maxrss` of any single
            process of the job (for `git`, the max over the clone and the push
            and their helpers); memory of concurrent processes is not summed.
            Commands run under GNU time, which reports that rusage: a process
            forked straight from this interpreter would inherit its
            high-water mark, since Linux keeps ru_maxrss across exec;
  recv/sent bytes the client received from / sent to the servers, read from
            nginx's access log (`$bytes_sent` and `$request_length` of every
            request made during the run), so both tools are counted the same
            way, headers included;
  server    CPU and largest process of both servers' `git http-backend`
            processes and their git children (upload-pack, pack-objects,
            receive-pack, index-pack, rev-list), with http-backend run under
            GNU time too. Not in the client figures, but in the wall time, as
            it is for a user: it is what bounds a first mirror.

Each repetition starts from a freshly prepared destination (an empty bare
repository for `first`, a copy of a mirror of the base source otherwise), and
the tools alternate within a repetition so slow drift in machine load hits
both. Results are the median with the min-max spread over the repetitions.

Repositories are generated deterministically (seeded content, fixed dates)
with `git fast-import` and cached under bench/.cache/ keyed by their
parameters, so reruns skip generation.

Run `python3 bench/run.py --help` for the options; bench/README.md explains
the method and caveats.

Modules, by concern: `common` (paths, constants, small helpers), `build`
(building git-relay, checking the servers' programs), `server` (nginx +
fcgiwrap + http-backend), `repos` (generated repositories), `measure`
(running and measuring one job, the scenarios), `org` (the organization
sweep), `report` (the markdown results) and `cli` (options and the run).
"""
