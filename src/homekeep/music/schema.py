"""The music database schema (append-only migrations)."""

from __future__ import annotations

MIGRATIONS = (
    """
    CREATE TABLE roots (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        added_at TEXT NOT NULL,
        scanned_at TEXT
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        root_id INTEGER NOT NULL REFERENCES roots(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        dir TEXT NOT NULL,
        ext TEXT NOT NULL,
        kind TEXT NOT NULL,
        detected TEXT,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        inode INTEGER NOT NULL,
        hash TEXT,
        error TEXT,
        warning TEXT,
        read_at TEXT,
        UNIQUE (root_id, path)
    );
    CREATE TABLE tracks (
        file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        title TEXT,
        artist TEXT,
        album TEXT,
        album_artist TEXT,
        track INTEGER,
        track_total INTEGER,
        disc INTEGER,
        disc_total INTEGER,
        date TEXT,
        year INTEGER,
        genre TEXT,
        duration REAL,
        bitrate INTEGER,
        sample_rate INTEGER,
        channels INTEGER,
        bits_per_sample INTEGER,
        compilation INTEGER NOT NULL DEFAULT 0,
        release_type TEXT,
        mb_track_id TEXT,
        mb_recording_id TEXT,
        mb_album_id TEXT,
        mb_artist_id TEXT,
        mb_album_artist_id TEXT,
        mb_release_group_id TEXT,
        artist_id TEXT NOT NULL,
        album_artist_id TEXT NOT NULL,
        album_id TEXT NOT NULL
    );
    CREATE INDEX tracks_album ON tracks(album_id, disc, track);
    CREATE INDEX tracks_artist ON tracks(artist_id);
    CREATE TABLE pictures (
        file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        type INTEGER NOT NULL,
        mime TEXT NOT NULL,
        description TEXT NOT NULL,
        hash TEXT NOT NULL,
        size INTEGER NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE TABLE images (
        hash TEXT PRIMARY KEY,
        mime TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        width INTEGER,
        height INTEGER,
        thumb_size INTEGER NOT NULL,
        error TEXT
    );
    CREATE TABLE artists (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        mb_artist_id TEXT,
        track_count INTEGER NOT NULL,
        album_count INTEGER NOT NULL
    );
    CREATE INDEX artists_name ON artists(name COLLATE NOCASE);
    CREATE TABLE albums (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        title TEXT NOT NULL,
        album_artist TEXT NOT NULL,
        album_artist_id TEXT NOT NULL,
        year INTEGER,
        date TEXT,
        genre TEXT,
        compilation INTEGER NOT NULL,
        release_type TEXT,
        mb_album_id TEXT,
        mb_release_group_id TEXT,
        track_count INTEGER NOT NULL,
        disc_count INTEGER NOT NULL,
        duration REAL NOT NULL,
        root_id INTEGER NOT NULL,
        dir TEXT NOT NULL,
        cover_hash TEXT,
        cover_source TEXT
    );
    CREATE INDEX albums_artist ON albums(album_artist_id);
    CREATE INDEX albums_title ON albums(title COLLATE NOCASE);
    CREATE TABLE scans (
        id INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        roots TEXT NOT NULL,
        full INTEGER NOT NULL,
        workers INTEGER NOT NULL,
        counts TEXT NOT NULL,
        timings TEXT NOT NULL
    );
    """,
    # every artist and genre of a track (multi-valued tags), in tag order; position 0 is
    # the main artist (tracks.artist_id). Existing tracks get their one known value.
    """
    CREATE TABLE track_artists (
        file_id INTEGER NOT NULL REFERENCES tracks(file_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        artist_id TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE INDEX track_artists_artist ON track_artists(artist_id);
    CREATE TABLE track_genres (
        file_id INTEGER NOT NULL REFERENCES tracks(file_id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        genre TEXT NOT NULL,
        PRIMARY KEY (file_id, position)
    );
    CREATE INDEX track_genres_genre ON track_genres(genre COLLATE NOCASE);
    INSERT INTO track_artists (file_id, position, artist_id, name)
        SELECT file_id, 0, artist_id, COALESCE(artist, '[Unknown Artist]') FROM tracks;
    INSERT INTO track_genres (file_id, position, genre)
        SELECT file_id, 0, genre FROM tracks WHERE genre IS NOT NULL;
    """,
)
