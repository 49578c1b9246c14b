// An origin address guard for tests that ends the edge thread that consults it for 127.0.0.2
// (process.exit in a worker thread stops that thread only): how a test makes a thread die.
export function crashingGuard(): (address: string) => boolean {
  return (address) => {
    if (address === '127.0.0.2') process.exit(3);
    return true;
  };
}
