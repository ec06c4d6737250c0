"""The durable store of the meters' non-volatile registers: one SQLite file per state
dir (one writer, WAL, checksummed JSON rows; every step's changed rows committed in one
transaction, fsynced every checkpoint interval) and the row format with its checks on load.
"""

from twin.store.checkpoint import RETRY_S, Checkpointer, commit_in_thread
from twin.store.rows import decode_row, encode_row, row_crc32
from twin.store.sqlite import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    STORE_FILENAME,
    Store,
    default_state_dir,
    store_path,
)

__all__ = [
    "APPLICATION_ID",
    "RETRY_S",
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "Checkpointer",
    "Store",
    "commit_in_thread",
    "decode_row",
    "default_state_dir",
    "encode_row",
    "row_crc32",
    "store_path",
]
