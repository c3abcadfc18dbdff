//! Write-ahead log on glommio DmaFile (O_DIRECT, io_uring) with group commit.
