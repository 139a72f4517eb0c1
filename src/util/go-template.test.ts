import { test } from 'node:test';
import assert from 'node:assert/strict';
import { format, goMap, parseTemplate, TemplateError } from './go-template.js';

const vm = {
  name: 'web', status: 'healthy', pid: 42, labels: { tier: 'front', app: 'shop' },
  State: { Status: 'running', Running: true, Health: { Status: 'healthy' } },
  network: { publish: [{ hostPort: 8080, guestPort: 80 }, { hostPort: 8443, guestPort: 443 }] }, empty: [],
};
const render = (t: string, dot: unknown = vm) => parseTemplate(t).render(dot);

test('fields by path, matched exactly or ignoring case (podman\'s spellings reach fcvm\'s)', () => {
  assert.equal(render('{{.name}} {{.State.Status}}'), 'web running');
  assert.equal(render('{{.Name}}\t{{.Status}}\t{{.state.health.status}}'), 'web\thealthy\thealthy');
  assert.equal(render('{{.}}', 'x'), 'x');
  assert.equal(render('plain text'), 'plain text');
});

test('values print as Go\'s %v: maps sorted, slices spaced, booleans and numbers plain', () => {
  assert.equal(render('{{.labels}}'), 'map[app:shop tier:front]');
  assert.equal(render('{{.State.Running}} {{.pid}}'), 'true 42');
  assert.equal(format([1, 'a', { b: 2 }]), '[1 a map[b:2]]');
  assert.equal(format(undefined), '<no value>');
});

test('json, index, join, upper, lower', () => {
  assert.equal(render('{{json .labels}}'), '{"tier":"front","app":"shop"}');
  assert.equal(render('{{json .}}', { a: 1 }), '{"a":1}');
  assert.equal(render('{{index .labels "tier"}}'), 'front');
  assert.equal(render('{{join .x ", "}}', { x: ['a', 'b'] }), 'a, b');
  assert.equal(render('{{upper .name}}{{lower "AB"}}'), 'WEBab');
});

test('range, if/else, and trim markers', () => {
  assert.equal(render('{{range .network.publish}}{{.hostPort}}->{{.guestPort}} {{end}}'), '8080->80 8443->443 ');
  assert.equal(render('{{range .labels}}[{{.}}]{{end}}'), '[shop][front]');
  assert.equal(render('{{if .State.Running}}up{{else}}down{{end}}'), 'up');
  assert.equal(render('{{if .empty}}some{{else}}none{{end}}'), 'none');
  assert.equal(render('a  {{- .name -}}  b'), 'awebb');
});

test('a table header takes each value\'s last field name, and the text between', () => {
  assert.equal(parseTemplate('{{.Names}}\t{{.State.Status}}\t{{json .Labels}}').header(), 'NAMES\tSTATUS\tLABELS');
  assert.equal(parseTemplate('{{.Names}} {{if .x}}{{.Status}}{{end}}\t{{range .p}}{{.hostPort}},{{end}}').header(), 'NAMES STATUS\tHOSTPORT,');
});

test('index of a missing key is empty, as Go\'s of a map of strings; prototype names are no fields', () => {
  assert.equal(render('[{{index .labels "nope"}}]'), '[]');
  assert.throws(() => render('{{.constructor}}'), /there is no field \.constructor/);
  assert.throws(() => parseTemplate('{{index .labels "a\\q"}}'), /has an escape this template does not know/);
});

test('bad templates and missing fields are refused, naming the part at fault', () => {
  assert.throws(() => parseTemplate('{{.name'), (e: Error) => e instanceof TemplateError && /has no closing/.test(e.message));
  assert.throws(() => parseTemplate('{{range .x}}'), /has no \{\{end\}\}/);
  assert.throws(() => parseTemplate('{{end}}'), /without a \{\{range\}\} or \{\{if\}\}/);
  assert.throws(() => parseTemplate('{{printf "%s" .name}}'), /"printf" is not a function this template knows/);
  assert.throws(() => parseTemplate('{{json .a .b}}'), /json takes 1 argument/);
  assert.throws(() => parseTemplate('{{name}}'), /"name" is not a field/);
  assert.throws(() => render('{{.nosuch}}'), /there is no field \.nosuch \(fields: name, status/);
  assert.throws(() => render('{{.name.first}}'), /cannot take \.first of web/);
});

test('a map\'s missing key prints <no value>; a struct\'s missing field is an error', () => {
  const dot = { Labels: goMap({ tier: 'front' }), State: { Status: 'running' } };
  assert.equal(render('[{{.Labels.tier}}] [{{.Labels.nope}}]', dot), '[front] [<no value>]');
  assert.throws(() => render('{{.State.Nope}}', dot), TemplateError);
});

test('variables, parenthesized pipelines, len, eq/ne and | as Docker\'s documented templates use them', () => {
  const dot = {
    Name: 'web',
    Config: { Labels: goMap({ tier: 'front', app: 'shop' }) },
    NetworkSettings: { Ports: goMap({ '80/tcp': [{ HostIp: '', HostPort: '8080' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }] }) },
    Mounts: [{ Source: '/a', Destination: '/x' }, { Source: '/b', Destination: '/y' }],
    State: { Status: 'running' },
  };
  const r = (t: string) => parseTemplate(t).render(dot);
  assert.equal(r('{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}'), 'app=shop;tier=front;');
  assert.equal(r('{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{(index $conf 0).HostPort}} {{end}}'), '53/udp -> 5353 80/tcp -> 8080 ');
  assert.equal(r('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}'), '8080');
  assert.equal(r('{{range $i, $m := .Mounts}}{{$i}}:{{$m.Source}}:{{$.Name}} {{end}}'), '0:/a:web 1:/b:web ');
  assert.equal(r('{{range $m := .Mounts}}{{.Destination}}{{end}}'), '/x/y');
  assert.equal(r('{{len .Mounts}} {{len .Config.Labels}}'), '2 2');
  assert.equal(r('{{if eq .State.Status "running"}}up{{else}}down{{end}} {{if ne .Name "web"}}other{{else}}same{{end}}'), 'up same');
  assert.equal(r('{{.Name | upper}} {{.Config.Labels | json}}'), 'WEB {"tier":"front","app":"shop"}');
  assert.equal(parseTemplate('{{range $k, $v := .L}}{{$k}}{{end}}\t{{(index .P 0).HostPort}}').header(), 'K\tHOSTPORT');
  assert.throws(() => parseTemplate('{{range $a, $b, $c := .L}}{{end}}'), /declare range \$value := X/);
  assert.throws(() => r('{{$nope}}'), /undefined variable \$nope/);
  assert.throws(() => parseTemplate('{{.Name | nosuch}}'), /"nosuch" after \| is not a function/);
});
