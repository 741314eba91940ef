"""pytest plugin of fakebeanstalk (fixtures land with the fakebeanstalk issue)."""
