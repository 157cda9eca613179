#!/usr/bin/env python3
"""Regenerates engine_cases.json: small templates rendered by jinja2 configured
the way transformers' apply_chat_template configures it (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, tojson(ensure_ascii=False), raise_exception).

The C++ tests only read the committed JSON; jinja2 is needed only to regenerate it:
    python3 tests/chat_template/generate_engine_cases.py
"""
import os
import json, jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols

def raise_exception(m): raise jinja2.exceptions.TemplateError(m)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
from jinja2.ext import Extension
from jinja2 import nodes

class GenerationBlocks(Extension):
    """transformers' AssistantTracker without tracking: {% generation %} renders its body."""
    tags = {"generation"}
    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.Scope(body, lineno=lineno)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, GenerationBlocks])
env.filters['tojson'] = tojson
env.globals['raise_exception'] = raise_exception

cases = []  # (name, template, context)
def case(name, tpl, ctx=None): cases.append((name, tpl, ctx or {}))

# whitespace control
case("trim_blocks and lstrip_blocks around an if", "  {% if true %}\n    x\n  {% endif %}\ny")
case("for loop lines", "{% for i in range(3) %}\n{{ i }}\n{% endfor %}")
case("minus markers strip all whitespace", "a  {%- if true -%}  b  {%- endif -%}  c")
case("variable minus markers", "{{- ' x ' -}}\n  y\n{{ 'z' -}}\n\n  w")
case("lstrip ignores variable tags and mid-line block tags", "  {{ 'v' }}  {% if true %}z{% endif %}\nx {% if true %}y{% endif %}")
case("trim_blocks removes one newline only", "{% if true %}\n\nA{% endif %}\n\nB")
case("comments", "a\n  {# comment #}\nb {#- tight -#}  c\n{# x #}d")
case("plus marker disables lstrip", "  {%+ if true %}x{% endif %}")
case("raw block", "{% raw %}{{ not_evaluated }} {% if %}{% endraw %}!")
case("one trailing newline is dropped", "abc\n\n")
case("tabs are stripped by lstrip", "\t{% if true %}\n\tbody\n\t{% endif %}\nend")
case("block tag at start of template", "   {% set x = 1 %}\n{{ x }}")
case("crlf newlines are normalised", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc")
case("nested indentation like a chat template", """{%- for m in messages %}
    {%- if m.role == 'user' %}
        {{- '<u>' + m.content + '</u>\\n' }}
    {%- else %}
        {{- '<a>' + m.content + '</a>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<a>' }}
{%- endif %}
""", {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "add_generation_prompt": True})
# loops
case("loop variables", "{% for x in ['a','b','c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}")
case("previtem and nextitem", "{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }};{% if loop.previtem %}p{% endif %}{% endfor %}")
case("for else", "{% for x in [] %}x{% else %}empty{% endfor %}{% for x in [1] %}one{% else %}no{% endfor %}")
case("filtered loop counts only kept items", "{% for x in range(10) if x is odd %}{{ loop.index }}/{{ loop.length }}:{{ x }} {% endfor %}")
case("break and continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}")
case("tuple unpacking over items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k, v in d|items %}{{ k }}{{ v }}{% endfor %}", {"d": {"b": 1, "a": 2}})
case("nested loops keep their own loop", "{% for a in [1,2] %}{% for b in [3,4] %}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}")
case("iterating a dict gives keys, a string gives characters", "{% for k in d %}{{ k }}{% endfor %}|{% for c in 'héj' %}{{ c }}.{% endfor %}", {"d": {"z": 1, "y": 2}})
case("loop cycle", "{% for x in range(4) %}{{ loop.cycle('a', 'b') }}{% endfor %}")
# scoping
case("namespace carries values out of loops", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}")
case("set inside a loop does not leak", "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}")
case("set inside if leaks", "{% if true %}{% set y = 'in' %}{% endif %}{{ y }}")
case("set block", "{% set s %}  a {{ 1 + 1 }} {% endset %}[{{ s }}]")
case("tuple set", "{% set a, b = 1, 'two' %}{{ a }}{{ b }}")
# macros
case("macro with defaults and keywords", "{% macro greet(name, greeting='Hi') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Yo') }} {{ greet('X')|upper }}")
case("macro sees template variables", "{% set ns = namespace(c=0) %}{% macro bump() %}{% set ns.c = ns.c + 1 %}{{ ns.c }}{% endmacro %}{{ bump() }}{{ bump() }}{{ suffix }}", {"suffix": "!"})
case("macro missing argument is undefined", "{% macro m(a, b) %}[{{ a }}|{{ b }}|{{ b is defined }}]{% endmacro %}{{ m(1) }}")
case("call block", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner{% endcall %}")
case("filter block", "{% filter upper %}abc {{ 'd' }}{% endfilter %}")
# filters
case("trim length default", "{{ ' a b '|trim }}|{{ [1,2,3]|length }}|{{ 'héllo'|length }}|{{ none|default('d') }}|{{ missing|default('d') }}|{{ ''|default('e', true) }}|{{ 'xxaxx'|trim('x') }}|{{ d|count }}", {"d": {"a": 1}})
case("case filters", "{{ 'hello WORLD'|capitalize }} {{ 'hello wORLD-foo (bar'|title }} {{ 'ABÉ'|lower }} {{ 'abé'|upper }}")
case("sort unique dictsort", "{{ [3,1,2]|sort|join(',') }} {{ [3,1,2]|sort(reverse=true)|list }} {{ ['b','A','a','B']|unique|list }} {{ {'b':1,'a':2}|dictsort }} {{ ['b','A','c']|sort }}")
case("map attribute and join", "{{ users|map(attribute='name')|join(', ') }} {{ users|join('|', attribute='name') }} {{ ['a','b']|map('upper')|list }}", {"users": [{"name": "ann"}, {"name": "bo"}]})
case("selectattr rejectattr", "{{ msgs|selectattr('role','equalto','user')|map(attribute='content')|list }} {{ msgs|rejectattr('role','equalto','user')|list|length }} {{ msgs|selectattr('flag')|list|length }}", {"msgs": [{"role": "user", "content": "a", "flag": True}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]})
case("select reject", "{{ [1,2,3,4]|select('even')|list }} {{ [1,2,3,4]|reject('odd')|list }} {{ [0,1,'',none,'x']|select|list }}")
case("first last list reverse", "{{ [1,2,3]|first }}{{ [1,2,3]|last }}{{ 'abc'|first }} {{ 'abc'|list }} {{ [1,2]|reverse|list }} {{ 'abc'|reverse }}")
case("numbers", "{{ '42'|int + 1 }} {{ '3.5'|float }} {{ -3|abs }} {{ 2.0 }} {{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 7.5 // 2 }} {{ 'x'|int }} {{ '2.7'|int }}")
case("float formatting like Python", "{{ 1e20 }} {{ 0.0001 }} {{ 1e-5 }} {{ 100.0 }} {{ 1e16 }} {{ 1.5e16 }} {{ 123456789.123 }} {{ 0.1 + 0.2 }} {{ 1e15 }} {{ -0.5 }} {{ 2.5|round }} {{ 3.14159|round(2) }} {{ 3.5|round }}")
case("string filters", "{{ 'a-b'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'hello big  world'|wordcount }} {{ 5|string ~ 'x' }} {{ '<a&b>'|e }} {{ 'x'|safe }}")
case("indent filter", "{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='> ', blank=true) }}")
case("sum min max", "{{ [1,2,3]|sum }} {{ [1,2,3]|min }} {{ [1,5,3]|max }} {{ items|sum(attribute='n') }}", {"items": [{"n": 2}, {"n": 5}]})
# tojson
case("tojson nested with unicode", "{{ data|tojson }}", {"data": {"name": "café ☕ 😀", "list": [1, 2.5, True, None, {"x": "q\"uote\n\t\\ </tag>"}], "empty": {}, "e2": [], "ctl": "\u0001"}})
case("tojson indent", "{{ data|tojson(indent=2) }}", {"data": {"a": [1, {"b": None}], "c": {}, "d": "é"}})
case("tojson options", "{{ data|tojson(sort_keys=true) }} {{ data|tojson(separators=(',', ':')) }} {{ data|tojson(ensure_ascii=true) }}", {"data": {"z": "é😀", "a": [1, 2]}})
case("tojson of template values", "{{ {'k': [1, 2.0, 'x', none, true]}|tojson }} {{ 'str'|tojson }} {{ 3|tojson }}")
# methods
case("string methods", "{{ 'a,b,c'.split(',') }} {{ '  x  '.strip() }} {{ 'xxhixx'.strip('x') }} {{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x','c')) }} {{ ' a b  c '.split() }} {{ 'a-b-c'.rsplit('-', 1) }} {{ 'a-b-c'.split('-', 1) }} {{ 'Hello'.replace('l','L') }} {{ 'héllo'.find('l') }} {{ 'hello'.count('l') }} {{ 'hello world'.title() }} {{ '{} and {}'.format(1, 'x') }} {{ 'AbC'.lower() }}{{ 'AbC'.upper() }} {{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'x\\n\\n'.rstrip() }}|")
case("dict methods", "{{ d.get('a') }} {{ d.get('z', 'no') }} {{ d.get('z') }} {{ d.keys()|list }} {{ d.values()|list }} {{ d['a'] }} {{ d.a }} {{ d.items()|list }}", {"d": {"a": 1, "b": [2]}})
# tests
case("tests", "{{ x is defined }} {{ y is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [1] is iterable }} {{ 'a' is iterable }} {{ 1 is number }} {{ true is boolean }} {{ true is true }} {{ false is false }} {{ 0 is false }} {{ [1] is sequence }} {{ y is undefined }} {{ 3 is divisibleby 3 }} {{ 1 is integer }} {{ 1.0 is float }} {{ x is not none }} {{ 'ab' is lower }} {{ 2 is even }} {{ 1 is in [1] }} {{ y is iterable }} {{ y is mapping }}", {"x": 1})
case("undefined is falsy, empty and iterable", "[{{ y }}]{{ y|length }}{% for a in y %}x{% endfor %}{% if not y %}F{% endif %}{{ y ~ 'c' }}{{ 'a' in y }}{{ y == y }}{{ y|trim }}{{ y|list }}{{ y|string }}")
case("attribute of a value that lacks it is undefined", "[{{ d.nope }}][{{ s.nope }}][{{ n.nope }}][{{ l[5] }}][{{ d['nope'] }}]{{ n.nope is defined }}", {"d": {}, "s": "x", "n": None, "l": [1]})
# expressions
case("printing values", "{{ none }} {{ true }} {{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v', 'n': [1]} }} {{ \"it's\" }} {{ ['it\\'s', 'q\"'] }} {{ (1, 2) }} {{ (1,) }} {{ 'x\\ty' }}")
case("conditional expressions", "{{ 'yes' if x else 'no' }} [{{ 'a' if false }}] {{ 'a' if none is none else 'b' }} {{ 1 if false else 2 if true else 3 }}", {"x": 0})
case("string escapes", "{{ 'tab\\there\\nnew' }} {{ \"q\\\"d\" }} {{ '\\u00e9\\x41' }} {{ 'back\\\\slash' }} {{ 'un\\known' }} {{ 'adj' 'acent' }}")
case("concat and arithmetic", "{{ 1 ~ 'a' ~ none ~ 2.0 }} {{ 'abc' * 2 }} {{ 10 / 4 }} {{ 3 - 5 }} {{ ([1] + [2])|length }} {{ 'a' + 'b' }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 + true }}")
case("membership and logic", "{{ 'a' in 'cat' }} {{ 2 in [1,2] }} {{ 'k' in {'k':1} }} {{ 3 not in [1,2] }} {{ 0 or 'x' }} {{ 1 and 'y' }} {{ not 0 }} {{ not 1 == 2 }} {{ [] or none }}")
case("comparisons", "{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }} {{ 2 >= 2 }} {{ 1 != 1 }} {{ true == 1 }} {{ none == none }} {{ 'a' == 'a' }} {{ {'a':1} == {'a':1} }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 1 }} {{ 1 < 3 < 2 }} {{ 1 == 1 in [1] }}")
case("subscripts and slices", "{{ 'abcdef'[::-1] }} {{ 'abcdef'[1:] }} {{ [1,2,3,4][-2:] }} {{ [1,2,3,4][::2] }} {{ 'abc'[-1] }} {{ [1,2,3][:-1] }} {{ 'héllo'[1:3] }} {{ [1,2,3,4,5][4:1:-2] }} {{ m[0]['role'] }} {{ m[-1].content }} {{ m[0].role|upper }}", {"m": [{"role": "user", "content": "a"}, {"role": "bot", "content": "z"}]})
case("filters bind tighter than arithmetic", "{{ m|length - 1 }} {{ -1|abs }} {{ 'a' ~ 'b'|upper }} {{ m|length * 2 }}", {"m": [1, 2, 3]})
case("dict literal and range", "{{ range(2, 10, 3)|list }} {{ range(3)|list }} {{ dict(a=1)|tojson }} {{ {'a': 1, 'b': [1, 2]}|tojson }}")
case("messages loop with reversed slice", "{% for m in messages[::-1] %}{{ (messages|length - 1) - loop.index0 }}{{ m }}{% endfor %}", {"messages": ["a", "b", "c"]})

# Constructs of other model families' templates (written for these tests in their style).
conversation = [{"role": "system", "content": "  Be brief.  "}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "<think>hmm</think>Hello"}, {"role": "user", "content": "Weather?"}]
case("alternating roles with raise_exception guard (Mistral style)",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
     "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
     "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
     "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
     {"bos_token": "<s>", "eos_token": "</s>", "messages": conversation[1:]})
case("system extraction, slicing and indented tojson (Llama 3 style)", """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{%- if tools is not none %}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {%- for arg_name, arg_val in tool_call.arguments | items %}
            {{- arg_name + '="' + arg_val + '"' }}
            {%- if not loop.last %}
                {{- ", " }}
            {%- endif %}
        {%- endfor %}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" %}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
""", {"bos_token": "<|begin_of_text|>", "add_generation_prompt": True, "builtin_tools": ["brave_search", "code_interpreter", "wolfram"],
      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Zürich"]}}, "required": ["city"]}}}],
      "messages": conversation + [{"role": "assistant", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "c"}}}]},
                                  {"role": "tool", "content": {"temp": 21.5}}, {"role": "tool", "content": "sunny"}]})
case("namespace flags and full-width markers (DeepSeek style)",
     "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
     "{% set ns = namespace(is_first=false, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}"
     "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{ bos_token }}{{ ns.system_prompt }}"
     "{%- for message in messages %}{%- if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{%- endif %}"
     "{%- if message['role'] == 'assistant' and message['content'] is not none %}{% set content = message['content'] %}"
     "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
     "{{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}{%- endif %}{%- endfor -%}"
     "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}",
     {"bos_token": "<｜begin▁of▁sentence｜>", "messages": conversation, "add_generation_prompt": True})
case("generation blocks render their body (transformers extension)",
     "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}[{{ m.content }}]{% endif %}{% endfor %}",
     {"messages": conversation[1:3]})

errors = [
    ("raise_exception message", "{{ raise_exception('Bad: ' ~ 1) }}", {}),
    ("attribute of undefined", "{{ foo.bar }}", {}),
    ("attribute of a missing key", "{{ d.missing.x }}", {"d": {}}),
    ("str plus None", "{{ 'a' + none }}", {}),
    ("raise inside macro inside loop", "{% macro f(x) %}{% if x > 1 %}{{ raise_exception('too big: ' ~ x) }}{% endif %}{% endmacro %}{% for i in range(3) %}{{ f(i) }}{% endfor %}", {}),
]

out = []
for name, tpl, ctx in cases:
    out.append({"name": name, "template": tpl, "context": ctx, "expected": env.from_string(tpl).render(**ctx)})
for name, tpl, ctx in errors:
    try:
        env.from_string(tpl).render(**ctx)
        raise SystemExit(f"{name}: expected an error")
    except (jinja2.exceptions.TemplateError, TypeError) as e:
        out.append({"name": name, "template": tpl, "context": ctx, "error": str(e)})
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "engine_cases.json"), "w", encoding="utf-8") as f:
    json.dump({"renderer": f"jinja2 {jinja2.__version__}, ImmutableSandboxedEnvironment(trim_blocks, lstrip_blocks, loopcontrols), tojson(ensure_ascii=False)",
               "cases": out}, f, ensure_ascii=False, indent=1)
    f.write("\n")
print(f"{len(out)} cases")
