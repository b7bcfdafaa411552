// kubectl runs plugins with whatever `node` is first on PATH (often an older
// system Node): say plainly what is needed instead of failing on a syntax or
// API error deep inside a dependency.
const MIN = [22, 19] as const;

export function nodeVersionOk(version: string = process.versions.node): boolean {
  const [maj, min] = version.split('.').map(Number) as [number, number];
  return maj > MIN[0] || (maj === MIN[0] && min >= MIN[1]);
}

export function checkNodeVersion(program: string): void {
  if (nodeVersionOk()) return;
  process.stderr.write(`${program} needs Node.js >= ${MIN[0]}.${MIN[1]} (Node 24 LTS recommended); this is Node ${process.versions.node} (${process.execPath}).\n`);
  process.exit(1);
}
