//! Bounds on what a server can make a run wait for or hold in memory.
//!
//! The socket's read timeout (`--timeout`) only notices silence: a server
//! that sends one byte every half second, or side-band progress and never a
//! pack, keeps it happy forever. [`Meter`] adds the two bounds curl has as
//! `CURLOPT_LOW_SPEED_LIMIT`/`_TIME` (git's `http.lowSpeedLimit` and
//! `http.lowSpeedTime`) and a deadline for the whole run:
//!
//! - *low speed*: over each window of `--timeout` seconds spent waiting on
//!   the server, a response must deliver at least
//!   [`Limits::low_speed_limit`] bytes per second on average, or it fails
//!   with [`Exceeded::TooSlow`];
//! - *deadline*: once [`Limits::deadline`] has passed, the next read fails
//!   with [`Exceeded::Deadline`].
//!
//! A server may think before its first byte of pack: git's upload-pack
//! sends keep-alive packets (and progress, when asked) while it counts and
//! compresses, which takes minutes on a large repository. So until the
//! first byte of data, a window in which the server sent anything at all
//! passes, for at most [`PREPARATION_WINDOWS`] windows; after that, or once
//! data has flowed, only data counts. A server that sends progress forever
//! and never a pack therefore ends after about `PREPARATION_WINDOWS + 1`
//! windows of `--timeout`, which is the knob for both. A local
//! `git upload-pack` is ours and exempt (see
//! [`Transport::is_local`](super::Transport::is_local)).
//!
//! Both are checked on every read of a response body by [`Checked`], which
//! is applied to every response the mirror engine reads, whatever the
//! transport. What counts as progress is the meter's to say: by default
//! every byte of the body; once a side-band stream starts,
//! [`Meter::count_data_only`] makes only the demultiplexed data
//! ([`Counting`] above the demultiplexer) count, so endless progress
//! messages are as slow as silence.
//!
//! The sizes bounded here ([`Limits::max_refs`],
//! [`Limits::max_message_bytes`]) are enforced by the protocol layer's
//! parsers; this module only carries them.
//!
//! The errors travel up through `io::Error` (readers are `Read`), and come
//! back out typed with [`Exceeded::from_io`], so that the engine can name
//! the side that was too slow.
//!
//! The window is time spent inside the response's reads, not wall-clock
//! time: the source's pack is read only as fast as the destination takes
//! the upload, and a slow destination must not make the source look slow.
//! The deadline is wall-clock time.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bounds on one side's conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Most refs a ref advertisement or `ls-refs` answer may list.
    pub(crate) max_refs: usize,
    /// Most bytes any answer other than a pack (ref advertisement, `ls-refs`,
    /// acknowledgments, push report) may take.
    pub(crate) max_message_bytes: u64,
    /// Least average bytes per second over a window of the timeout; 0 turns
    /// the check off.
    pub(crate) low_speed_limit: u64,
    /// When the whole run must be over, retries included.
    pub(crate) deadline: Option<Deadline>,
}

impl Limits {
    /// Default for [`Limits::max_refs`]: far above the largest real
    /// repositories (hundreds of thousands of refs), far below what would
    /// exhaust memory.
    pub(crate) const DEFAULT_MAX_REFS: usize = 2_000_000;
    /// Default for [`Limits::max_message_bytes`]: 512 MiB.
    pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: u64 = 512 << 20;
    /// Default for [`Limits::low_speed_limit`]: 1 KiB/s. A dial-up line
    /// clears it; a server trickling bytes to keep a connection open does
    /// not.
    pub(crate) const DEFAULT_LOW_SPEED_LIMIT: u64 = 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_refs: Self::DEFAULT_MAX_REFS,
            max_message_bytes: Self::DEFAULT_MAX_MESSAGE_BYTES,
            low_speed_limit: Self::DEFAULT_LOW_SPEED_LIMIT,
            deadline: None,
        }
    }
}

/// A point in time a run must end by, with the length it was given as, for
/// the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Deadline {
    /// When it passes.
    pub(crate) at: Instant,
    /// How long the run was given.
    pub(crate) allowed: Duration,
}

impl Deadline {
    /// `allowed` from `start`.
    pub(crate) fn after(start: Instant, allowed: Duration) -> Deadline {
        Deadline {
            at: start + allowed,
            allowed,
        }
    }

    /// Whether it has passed at `now`.
    pub(crate) fn passed(&self, now: Instant) -> bool {
        now >= self.at
    }
}

/// A time bound that ended a transfer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Exceeded {
    /// Too few bytes over a whole window.
    #[error(
        "the transfer is too slow: {bytes} bytes in {secs:.1}s, below the low-speed limit of {floor} bytes/s",
        secs = window.as_secs_f64()
    )]
    TooSlow {
        /// What arrived in the window.
        bytes: u64,
        /// How long the window was.
        window: Duration,
        /// The limit, in bytes per second.
        floor: u64,
    },
    /// The run's deadline passed.
    #[error("the deadline of {}s for the whole run passed", .allowed.as_secs())]
    Deadline {
        /// How long the run was given.
        allowed: Duration,
    },
}

impl Exceeded {
    /// The `Exceeded` an [`io::Error`] from a `Checked` reader carries,
    /// however many readers it passed through, if it is one.
    pub(crate) fn from_io(err: &io::Error) -> Option<Exceeded> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<Exceeded>())
            .cloned()
    }
}

impl From<Exceeded> for io::Error {
    fn from(err: Exceeded) -> Self {
        io::Error::new(io::ErrorKind::TimedOut, err)
    }
}

/// How many windows a server may spend preparing a pack, sending only
/// keep-alives or progress, before its first byte of data.
pub(crate) const PREPARATION_WINDOWS: u32 = 5;

/// The low-speed and deadline state of one response, shared by the readers
/// that feed it.
#[derive(Clone, Debug)]
pub(crate) struct Meter(Arc<Mutex<Window>>);

#[derive(Debug)]
struct Window {
    floor: u64,
    length: Duration,
    deadline: Option<Deadline>,
    /// Time spent in reads of the body since the window started.
    waited: Duration,
    /// Progress since the window started.
    bytes: u64,
    /// Whether the raw body's bytes count, or only [`Counting`]'s.
    count_raw: bool,
    /// Raw bytes since the window started, whatever counts.
    raw: u64,
    /// Whether any data (not keep-alives or progress) has been read.
    data_seen: bool,
    /// Windows of preparation left before the first byte of data.
    preparation: u32,
}

impl Meter {
    /// A meter with `limits`' floor and deadline over windows of `window`
    /// (the idle timeout).
    pub(crate) fn new(limits: &Limits, window: Duration) -> Meter {
        Meter(Arc::new(Mutex::new(Window::new(
            limits.low_speed_limit,
            window,
            limits.deadline,
        ))))
    }

    fn window(&self) -> std::sync::MutexGuard<'_, Window> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks the limits on every read of `inner`.
    pub(crate) fn checking<R>(&self, inner: R) -> Checked<R> {
        Checked {
            inner,
            meter: self.clone(),
        }
    }

    /// From now on only bytes read through [`Meter::counting`] are progress.
    pub(crate) fn count_data_only(&self) {
        self.window().count_raw = false;
    }

    /// Counts what is read through `inner` as progress.
    pub(crate) fn counting<R>(&self, inner: R) -> Counting<R> {
        Counting {
            inner,
            meter: self.clone(),
        }
    }

    fn add(&self, n: usize, raw: bool) {
        let mut window = self.window();
        if raw == window.count_raw {
            window.bytes = window.bytes.saturating_add(n as u64);
        }
        if raw {
            window.raw = window.raw.saturating_add(n as u64);
        } else if n > 0 {
            window.data_seen = true;
        }
    }

    fn waited(&self, time: Duration) {
        let mut window = self.window();
        window.waited = window.waited.saturating_add(time);
    }

    fn check(&self) -> Result<(), Exceeded> {
        self.window().check(Instant::now())
    }
}

impl Window {
    /// A fresh window: nothing read yet, all preparation windows left.
    fn new(floor: u64, length: Duration, deadline: Option<Deadline>) -> Window {
        Window {
            floor,
            length,
            deadline,
            waited: Duration::ZERO,
            bytes: 0,
            count_raw: true,
            raw: 0,
            data_seen: false,
            preparation: PREPARATION_WINDOWS,
        }
    }

    fn check(&mut self, now: Instant) -> Result<(), Exceeded> {
        if let Some(deadline) = self.deadline.filter(|d| d.passed(now)) {
            return Err(Exceeded::Deadline {
                allowed: deadline.allowed,
            });
        }
        let waited = self.waited;
        if self.floor == 0 || waited < self.length {
            return Ok(());
        }
        // The average over the window, which may have run past its length
        // while a read was blocked.
        let preparing = !self.count_raw && !self.data_seen && self.raw > 0;
        if preparing && self.preparation > 0 {
            self.preparation -= 1;
        } else if (self.bytes as f64) < self.floor as f64 * waited.as_secs_f64() {
            return Err(Exceeded::TooSlow {
                bytes: self.bytes,
                window: waited,
                floor: self.floor,
            });
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        self.raw = 0;
        Ok(())
    }
}

/// A response body whose every read checks the [`Meter`], before (a
/// deadline may have passed while we were busy elsewhere) and after.
pub(crate) struct Checked<R> {
    inner: R,
    meter: Meter,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.meter.check()?;
        let started = Instant::now();
        let read = self.inner.read(buf);
        self.meter.waited(started.elapsed());
        let n = read?;
        self.meter.add(n, true);
        self.meter.check()?;
        Ok(n)
    }
}

/// Counts the bytes read through it as progress on a [`Meter`] that
/// [counts data only](Meter::count_data_only).
pub(crate) struct Counting<R> {
    inner: R,
    meter: Meter,
}

impl<R> Counting<R> {
    /// The reader it counts.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.meter.add(n, false);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(floor: u64, secs: u64) -> (Window, Instant) {
        (
            Window::new(floor, Duration::from_secs(secs), None),
            Instant::now(),
        )
    }

    #[test]
    fn too_few_bytes_over_a_window_is_too_slow() {
        let (mut w, now) = window(1024, 3);
        w.bytes = 6;
        w.waited = Duration::from_secs(2);
        assert_eq!(w.check(now), Ok(()));
        w.waited = Duration::from_secs(3);
        assert_eq!(
            w.check(now),
            Err(Exceeded::TooSlow {
                bytes: 6,
                window: Duration::from_secs(3),
                floor: 1024
            })
        );
    }

    #[test]
    fn a_fast_window_starts_the_next() {
        let (mut w, now) = window(1024, 3);
        w.bytes = 4096;
        w.waited = Duration::from_secs(4);
        assert_eq!(w.check(now), Ok(()));
        assert_eq!((w.waited, w.bytes), (Duration::ZERO, 0));
        w.waited = Duration::from_secs(3);
        assert!(w.check(now).is_err());
    }

    #[test]
    fn time_not_spent_waiting_on_the_server_does_not_count() {
        let meter = Meter::new(&Limits::default(), Duration::from_millis(50));
        let mut body = meter.checking(&b"abc"[..]);
        let mut byte = [0u8; 1];
        body.read_exact(&mut byte).unwrap();
        // Busy elsewhere (the destination taking the upload) for longer
        // than the window: the server is not to blame.
        std::thread::sleep(Duration::from_millis(100));
        body.read_exact(&mut byte).unwrap();
        assert!(meter.window().waited < Duration::from_millis(50));
    }

    #[test]
    fn zero_floor_turns_the_check_off_but_not_the_deadline() {
        let (mut w, start) = window(0, 1);
        w.waited = Duration::from_secs(100);
        assert_eq!(w.check(start), Ok(()));
        w.deadline = Some(Deadline::after(start, Duration::from_secs(5)));
        assert_eq!(w.check(start + Duration::from_secs(4)), Ok(()));
        assert_eq!(
            w.check(start + Duration::from_secs(5)),
            Err(Exceeded::Deadline {
                allowed: Duration::from_secs(5)
            })
        );
    }

    #[test]
    fn only_data_counts_once_asked() {
        let meter = Meter::new(&Limits::default(), Duration::from_secs(60));
        let mut raw = meter.checking(&[0u8; 100][..]);
        io::copy(&mut raw, &mut io::sink()).unwrap();
        assert_eq!(meter.window().bytes, 100);
        meter.count_data_only();
        io::copy(&mut raw, &mut io::sink()).unwrap();
        let mut data = meter.counting(&[0u8; 10][..]);
        io::copy(&mut data, &mut io::sink()).unwrap();
        assert_eq!(meter.window().bytes, 110);
    }

    #[test]
    fn keep_alives_carry_a_server_preparing_its_pack_for_a_few_windows() {
        let meter = Meter::new(&Limits::default(), Duration::from_secs(1));
        meter.count_data_only();
        let keep_alive = |meter: &Meter| {
            meter.add(5, true);
            meter.waited(Duration::from_secs(1));
            meter.check()
        };
        for _ in 0..PREPARATION_WINDOWS {
            assert_eq!(keep_alive(&meter), Ok(()));
        }
        assert!(matches!(keep_alive(&meter), Err(Exceeded::TooSlow { .. })));

        // Once data has flowed, keep-alives carry nothing.
        let meter = Meter::new(&Limits::default(), Duration::from_secs(1));
        meter.count_data_only();
        meter.add(1, false);
        assert!(matches!(keep_alive(&meter), Err(Exceeded::TooSlow { .. })));
    }

    #[test]
    fn errors_survive_io() {
        let exceeded = Exceeded::Deadline {
            allowed: Duration::from_secs(5),
        };
        let io: io::Error = exceeded.clone().into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert_eq!(Exceeded::from_io(&io), Some(exceeded));
        assert_eq!(Exceeded::from_io(&io::ErrorKind::TimedOut.into()), None);
    }
}
