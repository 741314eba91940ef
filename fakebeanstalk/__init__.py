"""fakebeanstalk: an in-process beanstalkd 1.12 server for tests (work in progress)."""
