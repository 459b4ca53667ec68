#!/usr/bin/env python3
"""Writes what transformers' Jinja environment renders for each template case below.

  make_jinja_reference.py --out jinja-reference.jsonl

The environment is transformers' own (_compile_jinja_template: trim_blocks, lstrip_blocks,
loopcontrols, its tojson, raise_exception, strftime_now), given messages, tools=None,
documents=None, add_generation_prompt and the case's variables, as apply_chat_template gives them.
One JSON object a line: the case ({"name", "template", "messages", "variables"}) and "text" (the
rendered text) or "error" (what Jinja raised). Run by tests/reference/make-chat-template-reference.sh in a
Debian sid chroot (transformers, python3-jinja2).
"""
import argparse
import json

from transformers.utils.chat_template_utils import _compile_jinja_template

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo"},
        {"role": "assistant", "content": "Hi!", "tool_calls": [{"name": "f", "arguments": {"x": 1}}]},
        {"role": "user", "content": "Bye"}]

CASES = [
    # whitespace: trim_blocks, lstrip_blocks, "-" and "+", comments, raw, trailing newlines
    ("trim_blocks", "a\n{% if true %}\nb\n{% endif %}\nc"),
    ("lstrip_blocks", "  {% if true %}x{% endif %}  \n  y\n\t{% if true %}\tz{% endif %}"),
    ("minus_strips", "a  {%- if true -%}  b  {%- endif -%}  c|a {{- 'x' -}} b|a\n\n{{- 'y' }}\n\nz"),
    ("comments", "a\n  {#- comment -#}\n  b\n  {# c #}\nd{# x #}e"),
    ("plus_keeps", "x {%+ if true %}y{% endif %}|{% if true +%}\nkept{% endif %}"),
    ("raw", "{% raw %}{{ not evaluated }} {% if %}{% endraw %}|  {%- raw -%}  x  {%- endraw -%}  |"),
    ("trailing_newline", "abc\n"),
    ("two_trailing_newlines", "abc\n\n"),
    ("crlf", "a\r\nb\r{% if true %}\r\nc{% endif %}"),
    ("output_no_trim", "{{ 'a' }}\n{{ 'b' }}\n  {{ 'c' }}"),
    ("multiline_tag", "{%\n  if true\n%}yes{% endif %}"),
    ("comment_then_set", "{# top #}\n{%- set x = 1 -%}\n\n  {{ x }}\n"),
    # printing values as Python does
    ("numbers", "{{ none }} {{ true }} {{ 1.0 }} {{ 1/3 }} {{ 10/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} "
                "{{ 1e20 }} {{ 1e-7 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e15 }} {{ 123456789012345678 }} {{ 0.0001 }} {{ 0.00001 }}"),
    ("more_numbers", "{{ 1_000 }} {{ 1.5e3 }} {{ 100.0 }} {{ 1e100 }} {{ -0.0 }} {{ 2 ** -1 }} {{ 10 % 3 }} {{ 10.5 % 3 }} {{ 7.0 // 2 }}"),
    ("containers", "{{ [1, 'a', none, true, 1.5, [2], {'k': 'v'}] }}|{{ ('a',) }}|{{ (1, 2) }}|{{ () }}|{{ {'a': \"it's\"} }}"),
    ("string_repr", "{{ ['it\\'s', 'say \"hi\"', 'both \\' \"', 'new\\nline', 'tab\\t', 'back\\\\slash', 'é'] }}"),
    ("messages_repr", "{{ messages }}"),
    ("undefined", "[{{ x }}]{{ x is defined }}{{ x | default('d') }}{{ '' | default('d', true) }}{{ none | default('d') }}{{ x | length }}"),
    ("undefined_attribute", "{{ x.y }}"),
    ("missing_key", "{{ messages[0].nope }}|{{ messages[0].nope is defined }}|{{ messages[9] is defined }}|{{ messages[0]['role'] }}"),
    ("call_undefined", "{{ messages[0].content.nope() }}"),
    ("strip_undefined", "{{ x.strip() }}"),
    # operators and precedence
    ("concat", "{{ 'a' ~ 1 ~ none ~ x ~ true ~ 1.5 }}"),
    ("sequences", "{{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }} {{ 'x' in 'xyz' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }}"),
    ("comparisons", "{{ 1 < 2 < 3 }} {{ 1 < 3 < 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ none == none }} {{ x == x }}"),
    ("logic", "{{ 1 and 'x' }} {{ 0 or 'y' }} {{ none or [] }} {{ not [] }} {{ not true == false }} {{ false and x.y }}"),
    ("conditional", "{{ 'yes' if x else 'no' }} {{ 'a' if true }}{{ 'b' if false }}|{{ 'x' if none is none else 'y' }}"),
    ("precedence", "{{ - 2 ** 2 }} {{ -1 | abs }} {{ 'a' ~ 'b' | upper }} {{ messages | length > 1 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 ** 3 ** 2 }}"),
    ("add_str_int", "{{ 'a' + 1 }}"),
    ("add_int_str", "{{ 1 + 'a' }}"),
    ("divide_by_zero", "{{ 1 / 0 }}"),
    ("compare_str_int", "{{ 'a' < 1 }}"),
    # strings
    ("str_methods", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|"
                    "{{ 'a b c'.split(' ', 1) }}|{{ 'a-b-c'.rsplit('-', 1) }}|{{ '  a b  c '.split(none, 1) }}|{{ 'Hello'.upper() }}{{ 'Hello'.lower() }}|"
                    "{{ \"they're bill's\".title() }}|{{ \"they're bill's-x (y\" | title }}|{{ 'hELLO wORLD'.capitalize() }}|"
                    "{{ 'aaa'.replace('a', 'b', 2) }}|{{ 'abc'.startswith(('x', 'a')) }}|{{ 'abc'.endswith('bc') }}|"
                    "{{ 'héllo'.find('l') }}|{{ '-'.join(['a', 'b']) }}|{{ '\\n\\nx\\n'.lstrip('\\n') }}|{{ 'x\\n\\n'.rstrip() }}"),
    ("str_index", "{{ 'héllo'[1] }} {{ 'héllo'[-1] }} {{ 'héllo'[1:3] }} {{ 'héllo'[::-1] }} {{ [1,2,3,4,5][1:-1] }} {{ [1,2,3,4,5][::2] }} "
                  "[{{ [1,2,3][5] }}] {{ [1,2,3][-5:10] }} {{ [1,2,3,4][::-2] }} {{ 'abc' | first }}{{ 'abc'[0:2] }} {{ messages[1:][0].role }}"),
    ("escapes", "{{ 'a\\tb' }}{{ \"\\u00e9\" }}{{ 'x\\\\y' }}{{ 'it\\'s' }}{{ 'q\\\"' }}"),
    ("unicode_whitespace", "[{{ '\u00a0\u3000x\u2003\u200b' | trim }}]"),
    # filters
    ("filters", "{{ ' x ' | trim }}|{{ 'abc' | length }}|{{ [1,2] | count }}|{{ {'a': 1} | length }}|{{ 'héllo' | upper }}|"
                "{{ ['b','a','C'] | sort }}|{{ ['b','a','C'] | sort(case_sensitive=true) }}|{{ [3,1,2] | sort(reverse=true) }}|"
                "{{ [1,2,3] | first }}{{ [1,2,3] | last }}|{{ 'abc' | reverse }}|{{ [1,2,3] | reverse | list }}|{{ [1, 2, 3] | join('-') }}|"
                "{{ [1,1,2,'a','A'] | unique | list }}|{{ [1, 2] | join }}|{{ 'xax' | trim('x') }}|{{ 'aXa' | lower }}|{{ 'a b' | replace(' ', '_') }}"),
    ("tojson", "{{ {'b': 1, 'a': [1.5, true, none, 'é\"\\n\\u0001']} | tojson }}|{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}|"
               "{{ [1, {'a': []}, {}] | tojson(indent=2) }}|{{ 'é😀' | tojson(ensure_ascii=true) }}|{{ [1, 2] | tojson(separators=(',', ':')) }}|"
               "{{ '<&>' | tojson }}|{{ messages[2] | tojson(indent=4) }}|{{ 1e20 | tojson }}|{{ 3.0 | tojson }}|{{ 'x' | tojson(indent='\\t') }}|{{ [[]] | tojson(indent=1) }}"),
    ("tojson_undefined", "{{ x | tojson }}"),
    ("select_map", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|"
                   "{{ messages | rejectattr('role', 'eq', 'user') | list | length }}|{{ messages | map(attribute='missing', default='z') | list }}|"
                   "{{ messages | selectattr('tool_calls', 'defined') | list | length }}|{{ messages | selectattr('tool_calls', 'undefined') | list | length }}|"
                   "{{ [0, 1, '', 'a'] | select | list }}|{{ [1,2,3,4] | select('odd') | list }}|{{ [1,2,3,4] | reject('even') | list }}|"
                   "{{ ['a', 'B'] | map('upper') | list }}|{{ messages | selectattr('tool_calls') | map(attribute='tool_calls.0.name') | list }}|"
                   "{{ messages | map(attribute='role') | unique | list }}|{{ [1, 2, 3] | map('string') | join }}"),
    ("dicts", "{% for k, v in {'b': 1, 'a': 2} | items %}{{ k }}={{ v }};{% endfor %}|{% for k, v in {'b': 1, 'a': 2} | dictsort %}{{ k }}={{ v }};{% endfor %}|"
              "{% for k in {'b': 1, 'a': 2} %}{{ k }}{% endfor %}|{% for k, v in {'x': 1}.items() %}{{ k }}{{ v }}{% endfor %}|"
              "{{ {'x': 1}.get('x') }}{{ {'x': 1}.get('y') }}{{ {'x': 1}.get('y', 'd') }}|{{ {'x': 1}.keys() | list }}|{{ {'a': 1}.items() | list }}|"
              "{% set d = {'items': 'key', 'k': 'v'} %}{{ d.k }}{{ d['items'] }}{{ d.items is callable }}|{{ {'a': 1, 'b': 2}.values() | list }}"),
    ("numeric_filters", "{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ '1.5' | float }}|{{ 3.7 | int }}|{{ 2.5 | round }}|{{ 3.14159 | round(2) }}|"
                        "{{ 2.1 | round(0, 'ceil') }}|{{ 'a\\nb\\n\\nc' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ [1, 2, 3] | sum }}|"
                        "{{ [3, 1, 2] | min }}{{ [3, 1, 2] | max }}|{{ 5 | string ~ 'x' }}|{{ '<b>\"&\\'' | e }}|{{ 'x' | safe }}|{{ [1, 2] | sum(start=10) }}|"
                        "{{ -3 | abs }}{{ -2.5 | abs }}|{{ '1.5' | int }}|{{ ' 7 ' | int }}|{{ true | int }}|{{ 'b' | max }}"),
    # tests
    ("tests", "{{ 1 is number }}{{ true is number }}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ 'a' is string }}"
              "{{ [] is iterable }}{{ 'a' is iterable }}{{ {} is mapping }}{{ [] is mapping }}{{ none is none }}{{ x is undefined }}"
              "{{ x is iterable }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 9 is divisibleby(2) }}{{ 'a' is in ['a'] }}"
              "{{ true is true }}{{ 1 is true }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 2 is gt 1 }}"
              "{{ 1 is not none }}{{ raise_exception is callable }}{{ true is boolean }}{{ 1 is sameas 1 }}{{ 1 is sequence }}{{ 'x' is sequence }}"
              "{{ messages[0].content is string }}{{ 1 is ge 1 }}{{ 1 is lt 2 }}{{ 1 is le 0 }}{{ 1 is equalto 1 }}{{ false is false }}"),
    # loops and scopes
    ("loop_variables", "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ loop.first }}{{ loop.last }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.index0 }},{% endfor %}"),
    ("loop_neighbours", "{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('a','b') }};{% endfor %}"),
    ("for_else_filter", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}{{ loop.length }}{% endfor %}"),
    ("loop_none", "{% for x in none %}{% endfor %}"),
    ("loop_int", "{% for x in 3 %}{% endfor %}"),
    ("loop_string", "{% for c in 'hé' %}[{{ c }}]{% endfor %}"),
    ("loop_controls", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("loop_scope", "{% set a = 1 %}{% for x in [1,2] %}{% set a = a + x %}{{ a }}{% endfor %}|{{ a }}"),
    ("loop_scope_first", "{% for x in [1,2,3] %}{% if loop.first %}{% set b = 'set' %}{% endif %}[{{ b }}]{% endfor %}"),
    ("namespace", "{% set ns = namespace(total=0, seen=false) %}{% for x in [1,2,3] %}{% set ns.total = ns.total + x %}{% endfor %}{{ ns.total }}{{ ns.seen }}"),
    ("if_scope", "{% if true %}{% set b = 'in if' %}{% endif %}{{ b }}"),
    ("nested_loops", "{% for a in [1,2] %}{% for b in 'xy' %}{{ loop.index }}{{ a }}{{ b }} {% endfor %}{{ loop.index }};{% endfor %}"),
    ("unpack", "{% for a, b in [[1, 2], (3, 4)] %}{{ a }}{{ b }}{% endfor %}|{% set c, d = 5, 6 %}{{ c }}{{ d }}"),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}"),
    ("macro_sees_globals", "{% macro who() %}{{ bos_token }}{{ messages | length }}{% endmacro %}{% for m in messages %}{{ who() }}{% endfor %}"),
    ("set_block", "{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]"),
    ("raise", "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with a user turn') }}{% endif %}"),
    ("generation_block", "{% for m in messages %}{% generation %}[{{ m.role }}]{% endgeneration %}{% endfor %}"),
    ("range", "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }} {{ range(0) | list }}"),
    ("strftime_now", "{{ strftime_now('%Y') | length }}"),
    ("unknown_filter", "{{ 'x' | no_such_filter }}"),
    ("include", "{% include 'other.jinja' %}"),
    ("unclosed_if", "{% if true %}x"),
    ("stray_endfor", "x{% endfor %}"),
    ("variables", "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|{{ enable_thinking }}|{{ custom.a }}"),
    # shapes of real templates
    ("llama31_like",
     "{{- bos_token }}\n{%- if custom_tools is defined %}\n    {%- set tools = custom_tools %}\n{%- endif %}\n"
     "{%- if not tools_in_user_message is defined %}\n    {%- set tools_in_user_message = true %}\n{%- endif %}\n"
     "{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n{%- endif %}\n"
     "{%- if not tools is defined %}\n    {%- set tools = none %}\n{%- endif %}\n\n"
     "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content']|trim %}\n    {%- set messages = messages[1:] %}\n"
     "{%- else %}\n    {%- set system_message = \"\" %}\n{%- endif %}\n\n"
     "{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}\n{{- \"Today Date: \" + date_string + \"\\n\\n\" }}\n"
     "{%- if tools is not none and not tools_in_user_message %}\n    {%- for t in tools %}\n        {{- t | tojson(indent=4) }}\n        {{- \"\\n\\n\" }}\n    {%- endfor %}\n{%- endif %}\n"
     "{{- system_message }}\n{{- \"<|eot_id|>\" }}\n\n"
     "{%- for message in messages %}\n    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}\n"
     "        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}\n"
     "    {%- elif 'tool_calls' in message %}\n        {%- if not message.tool_calls|length == 1 %}\n"
     "            {{- raise_exception(\"This model only supports single tool-calls at once!\") }}\n        {%- endif %}\n"
     "        {%- set tool_call = message.tool_calls[0] %}\n        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}\n"
     "        {{- '{\"name\": \"' + tool_call.name + '\", ' }}\n        {{- '\"parameters\": ' }}\n        {{- tool_call.arguments | tojson }}\n"
     "        {%- for arg_name, arg_val in tool_call.arguments | items %}{{ arg_name }}={{ arg_val }}{% if not loop.last %}, {% endif %}{% endfor %}\n"
     "        {{- \"}\" }}\n        {{- \"<|eot_id|>\" }}\n    {%- endif %}\n{%- endfor %}\n"
     "{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n"),
    ("mistral_like",
     "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n    {%- set loop_messages = messages[1:] %}\n"
     "{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n{{- bos_token }}\n"
     "{%- for message in loop_messages | rejectattr('role', 'equalto', 'tool') | selectattr('tool_calls', 'undefined') %}\n"
     "    {%- if message['role'] == 'user' %}\n        {%- if loop.last and system_message is defined %}\n"
     "            {{- '[INST] ' + system_message + '\\n\\n' + message['content'] + '[/INST]' }}\n        {%- else %}\n"
     "            {{- '[INST] ' + message['content'] + '[/INST]' }}\n        {%- endif %}\n"
     "    {%- elif message['role'] == 'assistant' %}\n        {{- ' ' + message['content']|trim + eos_token}}\n"
     "    {%- else %}\n        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}\n"
     "    {%- endif %}\n{%- endfor %}\n"),
    ("phi3_like",
     "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}"
     "{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}{% elif message['role'] == 'assistant' %}"
     "{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% else %}{{ eos_token }}{% endif %}"),
    ("deepseek_like",
     "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
     "{% set ns = namespace(is_first=false, is_tool=false, system_prompt='') %}"
     "{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
     "{{ bos_token }}{{ ns.system_prompt }}"
     "{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}"
     "{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{% set content = message['content'] %}"
     "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}"
     "{%- endif %}{%- endfor -%}{% if add_generation_prompt %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    variables = {"bos_token": "<s>", "eos_token": "</s>", "enable_thinking": False, "custom": {"a": [1, 2]}}
    with open(args.out, "w", encoding="utf-8") as out:
        for name, template in CASES:
            case = {"name": name, "template": template, "messages": CHAT, "variables": variables}
            try:
                text = _compile_jinja_template(template).render(messages=CHAT, tools=None, documents=None,
                                                                 add_generation_prompt=True, **variables)
                case["text"] = text
            except Exception as error:
                case["error"] = f"{type(error).__name__}: {error}"
            out.write(json.dumps(case, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
