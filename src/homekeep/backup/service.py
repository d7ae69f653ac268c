"""Open the backup service of an area context: config, jobs, run store."""

from __future__ import annotations

from dataclasses import dataclass

from homekeep.backup.config import BackupConfig
from homekeep.backup.jobbook import JobBook
from homekeep.backup.roots import Roots
from homekeep.backup.runner import Backups
from homekeep.backup.store import MIGRATIONS
from homekeep.core.area import AreaContext


@dataclass
class Service:
    """What commands, the daemon and the web pages share."""

    config: BackupConfig
    jobs: JobBook
    backups: Backups

    @property
    def roots(self) -> Roots:
        """Where jobs may read and write."""
        return self.backups.roots

    def close(self) -> None:
        self.backups.store.db.close()


def open_service(ctx: AreaContext) -> Service:
    """Load the config, the job list and the run database."""
    config = ctx.config(BackupConfig)
    db = ctx.database(MIGRATIONS)
    jobs = JobBook(ctx.settings, config)
    roots = Roots.of(config, data_dir=ctx.data.root, config_file=jobs.path)
    return Service(config, jobs, Backups(ctx.dir, config, db, roots))
