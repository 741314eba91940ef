"""beanstalkd 1.12's binlog (``-b DIR``): its file format, its bookkeeping, reading it back.

:mod:`~fakebeanstalk.binlog.records` is the byte format, :mod:`~fakebeanstalk.binlog.wal`
decides where each record goes and which files live, :mod:`~fakebeanstalk.binlog.reader`
reads files back at start-up, :mod:`~fakebeanstalk.binlog.storage` holds the files (a
directory, or memory for in-process restarts). Files written here restore in the real
beanstalkd and the other way round.
"""
