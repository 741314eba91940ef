"""Bulk stores: where job payloads live durably before beanstalkd sees a reference."""
