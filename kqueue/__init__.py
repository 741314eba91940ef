"""kqueue: a reliable real-time job queue on beanstalkd."""
