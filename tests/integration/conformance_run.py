#!/usr/bin/python3
# Runs rdma-core's own verbs test suite (Debian's python3-pyverbs ships it under
# /usr/share/doc/rdma-core/tests) from the directory given, on one device, and prints one
# line per test for conformance.sh to judge:
#   RESULT <test id> <pass|fail|error|skip> [the skip's reason]
# followed by each failure's traceback. Run under vrdma-run, with Debian's python3 (the
# one pyverbs is built for).
import argparse
import sys
import unittest
from importlib.machinery import SourceFileLoader
import os

args = argparse.ArgumentParser()
args.add_argument('suite', help='directory holding the suite (its __init__.py)')
args.add_argument('--dev', required=True)
args.add_argument('tests', nargs='*', help='test ids (all when none)')
opts = args.parse_args()

sys.path.insert(0, opts.suite)
# The suite reads its options (--dev) from sys.argv through its args_parser.
sys.argv = [sys.argv[0], '--dev', opts.dev]
from args_parser import parser  # noqa: E402  (the suite's module)
parser.parse_args()
suite_module = SourceFileLoader('tests', os.path.join(opts.suite, '__init__.py')).load_module()

loader = unittest.TestLoader()
if opts.tests:
    suite = loader.loadTestsFromNames(opts.tests, suite_module)
else:
    suite = loader.loadTestsFromModule(suite_module)


class Recorder(unittest.TestResult):
    """Prints each outcome as it comes, so a test that hangs leaves the others' lines."""

    def _say(self, test, outcome, reason=''):
        print(f'RESULT {test.id()} {outcome} {reason}'.rstrip(), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self._say(test, 'pass')

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._say(test, 'fail')

    def addError(self, test, err):
        super().addError(test, err)
        self._say(test, 'error')

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._say(test, 'skip', reason.replace('\n', ' '))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._say(test, 'skip', 'expected failure')

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._say(test, 'pass')


result = Recorder()
suite.run(result)
for test, trace in result.failures + result.errors:
    print(f'TRACE {test.id()}')
    print(trace)
print(f'ran {result.testsRun}')
