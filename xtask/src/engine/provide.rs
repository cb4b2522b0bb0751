//! Provide one model. Under the lock of its destination (so concurrent
//! processes take turns and the second finds the file present), from the shared cache
//! or by downloading it: with the cache, bytes go into a content-addressed entry (locked
//! too, so several checkouts download each file once) and the checkout gets a clone, a
//! hard link or a copy; without it, into a temp file beside the destination. The stamp of
//! what was installed is taken under the lock, from the very file that was put there.
//!
//! The stage knows no UI: what happens while it works goes to the model's listener as
//! [`Event`]s, and what it did comes back as a [`Provided`] that carries its model.

use camino::{Utf8Path, Utf8PathBuf};

use crate::engine::check::{self, LocalState};
use crate::engine::events::{Event, Listener, Wait};
use crate::engine::install;
use crate::engine::manifest::Model;
use crate::engine::plan::{self, Step};
use crate::engine::settings::Settings;
use crate::engine::transfer::{Downloader, Expect, Failed, Fetched, Job};
use crate::error::{Class, Fault, Site, Tried};
use crate::store::cache::{Cache, Entry};
use crate::store::fs::{Placed, check_inside};
use crate::store::lock::{self, Mode};
use crate::store::partial::Partial;
use crate::store::stamp::Stamp;

/// How one model ended up.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Boxed: a fetched model carries its source and what it passed, far larger than the rest.
    Downloaded(Box<Fetched>),
    /// From the cache, with no network request.
    FromCache(Placed),
    /// Another process provided it while this one waited.
    Present,
    /// The last fault of each origin tried.
    Failed(Vec<Tried>),
}

/// One model provided (or not), with the stamp of what was installed.
#[derive(Debug)]
pub(crate) struct Provided<'m> {
    pub(crate) model: &'m Model,
    /// Where it goes.
    pub(crate) dest: Utf8PathBuf,
    pub(crate) outcome: Outcome,
    pub(crate) stamp: Option<Stamp>,
}

/// Provides models into one checkpoints folder.
pub(crate) struct Provider<'a> {
    pub(crate) checkpoints: &'a Utf8Path,
    pub(crate) settings: &'a Settings,
    pub(crate) downloader: &'a Downloader<'a>,
}

impl Provider<'_> {
    /// Provides `step`'s model under the lock of its destination, telling `events`.
    pub(crate) fn provide<'m>(&self, step: &Step<'m>, events: &mut Listener<'_>) -> Provided<'m> {
        let (outcome, stamp) = self.provide_locked(step, events);
        let stamp = stamp.filter(|_| !self.settings.skip_checks && !matches!(outcome, Outcome::Failed(_)));
        Provided { model: step.model, dest: step.dest.clone(), outcome, stamp }
    }

    fn provide_locked(&self, step: &Step<'_>, events: &mut Listener<'_>) -> (Outcome, Option<Stamp>) {
        let model = step.model;
        let failed = |site: Site, fault: Fault| (Outcome::Failed(vec![Tried { site, fault }]), None);
        if let Err(e) = check_inside(self.checkpoints, &step.dest) {
            return failed(Site::Disk(step.dest.clone()), Fault::local(&step.dest, &e));
        }
        let lock_path = lock::path_lock(self.checkpoints, &model.path);
        let _path_lock = match lock::acquire(&lock_path, Mode::Exclusive, || {
            events(Event::Waiting(Wait::Model))
        }) {
            Ok((held, waited)) => {
                // The survey is stale if another process held the lock, or created the file
                // since: look again before downloading anything.
                let changed = waited || (step.state == LocalState::Missing && step.dest.exists());
                if changed {
                    let (state, stamp) = check::inspect(model, &step.dest, self.settings.skip_checks, None);
                    if state.is_present() {
                        events(Event::PresentAfterWait);
                        return (Outcome::Present, stamp);
                    }
                }
                held
            }
            Err(e) => return failed(Site::Lock(lock_path), Fault::from_error(&e)),
        };
        let result = match &self.settings.cache {
            Some(cache) => self.through_cache(cache, step, events),
            None => self.beside(step, events),
        };
        result.unwrap_or_else(|failed| (Outcome::Failed(failed.tried), None))
    }

    fn through_cache(
        &self,
        cache: &Cache,
        step: &Step<'_>,
        events: &mut Listener<'_>,
    ) -> Result<(Outcome, Option<Stamp>), Failed> {
        let model = step.model;
        let lock_path = cache.lock(&model.sha256);
        let (_entry_lock, _) =
            lock::acquire(&lock_path, Mode::Exclusive, || events(Event::Waiting(Wait::Cache)))
                .map_err(|e| Failed::at(Site::Lock(lock_path.clone()), Fault::from_error(&e)))?;
        let entry = cache.entry(&model.sha256);
        let downloaded = match cache.check(model.size, &model.sha256) {
            Entry::Good => None,
            Entry::PinSizeWrong { actual } => {
                let detail = format!(
                    "the cache entry {entry} has this sha256 but {actual} bytes, and the pin says {}; the entry is kept",
                    model.size
                );
                return Err(Failed::at(Site::Cache(entry.clone()), Fault::new(Class::BadPin, detail)));
            }
            found => {
                match &found {
                    Entry::Removed { reason } => events(Event::EntryRemoved { entry: &entry, reason }),
                    Entry::MovedAside { kind, to } => {
                        events(Event::EntryMovedAside { entry: &entry, kind, to })
                    }
                    _ => {}
                }
                let job = self.job(model, cache.partial(&model.sha256));
                let fetched = self.download(&job, events)?;
                install::checked(&fetched.file, &job.partial, &entry)
                    .and_then(|()| cache.seal(&model.sha256))
                    .map_err(|e| Failed::at(Site::Cache(entry.clone()), Fault::local(&entry, &e)))?;
                Some(fetched)
            }
        };
        let (placed, file) = install::sealed(&entry, &step.dest, self.settings.link_mode)
            .map_err(|e| on_disk(&step.dest, &e))?;
        // A hard link moved the shared inode's ctime and link count: record the state it
        // left, under the entry's lock, so every checkout linked to it (and the cache
        // itself) knows this change was the tool's, and no other.
        let linked = (placed == Placed::HardLink).then(|| cache.restamp(&model.sha256)).flatten();
        let stamp = check::stamp_of(&model.sha256, &file).map(|stamp| Stamp {
            placed: Some(placed),
            linked,
            ..stamp
        });
        let outcome = match downloaded {
            Some(fetched) => Outcome::Downloaded(Box::new(fetched)),
            None => Outcome::FromCache(placed),
        };
        Ok((outcome, stamp))
    }

    /// Without the cache: downloaded into a partial beside the destination, and renamed.
    fn beside(&self, step: &Step<'_>, events: &mut Listener<'_>) -> Result<(Outcome, Option<Stamp>), Failed> {
        let job = self.job(step.model, Partial::beside(&step.dest, &step.model.sha256));
        let fetched = self.download(&job, events)?;
        install::checked(&fetched.file, &job.partial, &step.dest).map_err(|e| on_disk(&step.dest, &e))?;
        // The open file is the placed one: its metadata cannot be another file's.
        let stamp = check::stamp_of(&fetched.sha256, &fetched.file);
        Ok((Outcome::Downloaded(Box::new(fetched)), stamp))
    }

    /// A download of `model` from its sources (mirrors first), collecting in `partial`.
    fn job<'m>(&self, model: &'m Model, partial: Partial) -> Job<'m> {
        let settings = self.settings;
        Job {
            expect: Expect::of(model, settings.skip_checks),
            sources: plan::sources(model, &settings.mirrors, settings.offline),
            partial,
        }
    }

    fn download(&self, job: &Job<'_>, events: &mut Listener<'_>) -> Result<Fetched, Failed> {
        if job.sources.is_empty() && self.settings.offline {
            let detail = "offline, and no local source (cache, file:// URL or directory mirror) has it";
            return Err(Failed::at(Site::Offline, Fault::new(Class::Offline, detail)));
        }
        self.downloader.fetch(job, events)
    }
}

/// A fault at placing a file that came whole: the disk's, whatever the cache setting.
fn on_disk(dest: &Utf8Path, err: &std::io::Error) -> Failed {
    Failed::at(Site::Disk(dest.to_owned()), Fault::local(dest, err))
}
